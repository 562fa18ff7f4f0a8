//! How the metadata store keeps a whole message and where it goes (scheduled messages, half messages):
//! format byte 1, then topic, partition (u32), timestamp (i64), key, value, header count (u32) and each
//! header's name and value; byte strings are a u32 length (`u32::MAX` = null) and the bytes, big-endian.

use bytes::Bytes;
use janus_api::{Header, NewRecord};

const FORMAT_V1: u8 = 1;

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        Some(b) => {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

/// Encodes `record`, bound for `partition` of `topic`.
pub(super) fn encode_message(topic: &str, partition: u32, r: &NewRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + topic.len() + r.value.as_ref().map_or(0, |v| v.len()));
    out.push(FORMAT_V1);
    put_bytes(&mut out, Some(topic.as_bytes()));
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(&r.timestamp_ms.to_be_bytes());
    put_bytes(&mut out, r.key.as_deref());
    put_bytes(&mut out, r.value.as_deref());
    out.extend_from_slice(&(r.headers.len() as u32).to_be_bytes());
    for h in &r.headers {
        put_bytes(&mut out, Some(h.key.as_bytes()));
        put_bytes(&mut out, h.value.as_deref());
    }
    out
}

/// Decodes what [`encode_message`] wrote: topic, partition and record.
pub(super) fn decode_message(value: &[u8]) -> Result<(String, u32, NewRecord), String> {
    let mut c = Reader { buf: value, pos: 0 };
    if c.u8()? != FORMAT_V1 {
        return Err("unknown format".into());
    }
    let topic = String::from_utf8(c.bytes()?.ok_or("null topic")?.to_vec()).map_err(|_| "topic not UTF-8")?;
    let partition = c.u32()?;
    let timestamp_ms = i64::from_be_bytes(c.take(8)?.try_into().map_err(|_| "short")?);
    let key = c.bytes()?.map(Bytes::copy_from_slice);
    let value = c.bytes()?.map(Bytes::copy_from_slice);
    let count = c.u32()? as usize;
    let mut headers = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let name =
            String::from_utf8(c.bytes()?.ok_or("null header name")?.to_vec()).map_err(|_| "header name not UTF-8")?;
        headers.push(Header { key: name, value: c.bytes()?.map(Bytes::copy_from_slice) });
    }
    Ok((topic, partition, NewRecord { key, value, headers, timestamp_ms }))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or("value truncated")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| "short")?))
    }
    fn bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        match self.u32()? {
            u32::MAX => Ok(None),
            n => self.take(n as usize).map(Some),
        }
    }
}
