//! The APIs this face serves, with the versions it advertises in ApiVersions (only what works), and the
//! dispatch of one request: header decoded, body decoded, the handler's answer encoded after its header.

use bytes::{Bytes, BytesMut};
use janus_core::Core;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, RequestHeader, ResponseHeader, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::errors::UNSUPPORTED_VERSION;
use super::{Caller, KafkaContext, admin, commits, fetch, groups, metadata, offsets, produce, producer_id};

/// One API served: the versions ApiVersions advertises (`advertised_min..=max`) and those it decodes
/// (`min..=max`); a request of an advertised version below `min` closes its connection.
#[derive(Clone, Copy, Debug)]
pub struct Served {
    /// The API.
    pub api: ApiKey,
    /// The lowest version advertised.
    pub advertised_min: i16,
    /// The lowest version answered.
    pub min: i16,
    /// The highest version advertised and answered.
    pub max: i16,
}

const fn served_as(api: ApiKey, advertised_min: i16, min: i16, max: i16) -> Served {
    Served { api, advertised_min, min, max }
}

/// Every API served, as ApiVersions advertises them. Produce is advertised from v0 though only v3 and
/// later are answered: librdkafka 2.0 (Debian's kcat) stops compressing when the advertised minimum is
/// above 0 (KAFKA-18659), and no client of the last years sends v0-2.
pub const SERVED: &[Served] = &[
    served_as(ApiKey::Produce, 0, 3, 9),
    served_as(ApiKey::Fetch, 4, 4, 12),
    served_as(ApiKey::ListOffsets, 1, 1, 7),
    served_as(ApiKey::Metadata, 0, 0, 12),
    served_as(ApiKey::ApiVersions, 0, 0, 3),
    served_as(ApiKey::InitProducerId, 0, 0, 4),
    served_as(ApiKey::FindCoordinator, 0, 0, 4),
    served_as(ApiKey::JoinGroup, 0, 0, 9),
    served_as(ApiKey::SyncGroup, 0, 0, 5),
    served_as(ApiKey::Heartbeat, 0, 0, 4),
    served_as(ApiKey::LeaveGroup, 0, 0, 5),
    served_as(ApiKey::OffsetCommit, 2, 2, 8),
    served_as(ApiKey::OffsetFetch, 1, 1, 8),
    served_as(ApiKey::ListGroups, 0, 0, 5),
    served_as(ApiKey::DescribeGroups, 0, 0, 5),
    served_as(ApiKey::CreateTopics, 2, 2, 7),
    served_as(ApiKey::DeleteTopics, 1, 1, 6),
    served_as(ApiKey::DescribeConfigs, 1, 1, 4),
    served_as(ApiKey::DeleteRecords, 0, 0, 2),
];

/// What handling one frame gave.
#[derive(Debug)]
pub enum Handled {
    /// The response frame (header and body, without the size).
    Answer(Bytes),
    /// Nothing to send (Produce with `acks` 0).
    NoAnswer,
    /// The request cannot be answered: close the connection, saying why in the log.
    Close(String),
}

fn served(api: ApiKey) -> Option<(i16, i16)> {
    SERVED.iter().find(|s| s.api == api).map(|s| (s.min, s.max))
}

/// The ApiVersions answer: what [`SERVED`] lists.
fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SERVED
        .iter()
        .map(|s| {
            ApiVersion::default().with_api_key(s.api as i16).with_min_version(s.advertised_min).with_max_version(s.max)
        })
        .collect();
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(api_keys)
}

/// Encodes `body` (of `api` at `version`) after a response header carrying `correlation_id`.
fn encode<R: Encodable>(correlation_id: i32, api: ApiKey, version: i16, body: &R) -> Handled {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    match header.encode(&mut out, api.response_header_version(version)).and_then(|()| body.encode(&mut out, version)) {
        Ok(()) => Handled::Answer(out.freeze()),
        Err(e) => Handled::Close(format!("could not encode the {api:?} v{version} response: {e}")),
    }
}

/// Handles one request frame (without its size) from `peer`.
pub async fn handle(core: &Core, ctx: &KafkaContext, peer: std::net::SocketAddr, frame: Bytes) -> Handled {
    if frame.len() < 8 {
        return Handled::Close(format!("a frame of {} bytes is shorter than any request header", frame.len()));
    }
    let (key, version) = (i16::from_be_bytes([frame[0], frame[1]]), i16::from_be_bytes([frame[2], frame[3]]));
    let Ok(api) = ApiKey::try_from(key) else { return Handled::Close(format!("unknown API key {key}")) };
    let Some((min, max)) = served(api) else { return Handled::Close(format!("{api:?} is not served")) };
    if api == ApiKey::ApiVersions && version > max {
        // As Kafka brokers do: a v0 answer with UNSUPPORTED_VERSION and the ranges, so the client retries
        // with a version both sides know. The correlation id sits right after key and version in every
        // header version.
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        return encode(correlation_id, api, 0, &api_versions(UNSUPPORTED_VERSION));
    }
    if version < min || version > max {
        return Handled::Close(format!("{api:?} v{version} is not served (v{min} to v{max} are)"));
    }
    let mut buf = frame;
    let header = match RequestHeader::decode(&mut buf, api.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return Handled::Close(format!("malformed {api:?} v{version} request header: {e}")),
    };
    let id = header.correlation_id;
    let caller = Caller { peer, client_id: header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default() };
    // Decodes the body as `$request`, then encodes what `$answer` (which may use `$r`) gives.
    macro_rules! serve {
        ($request:ty, |$r:ident| $answer:expr) => {
            match <$request>::decode(&mut buf, version) {
                Ok($r) => encode(id, api, version, &$answer),
                Err(e) => Handled::Close(format!("malformed {api:?} v{version} request: {e}")),
            }
        };
    }
    match api {
        ApiKey::ApiVersions => serve!(ApiVersionsRequest, |_r| api_versions(0)),
        ApiKey::Metadata => serve!(MetadataRequest, |r| metadata::answer(core, ctx, &r, version).await),
        ApiKey::Fetch => serve!(FetchRequest, |r| fetch::answer(core, Some(peer), r).await),
        ApiKey::ListOffsets => serve!(ListOffsetsRequest, |r| offsets::answer(core, r).await),
        ApiKey::InitProducerId => serve!(InitProducerIdRequest, |r| producer_id::answer(core, r).await),
        ApiKey::Produce => match ProduceRequest::decode(&mut buf, version) {
            Ok(req) => match produce::answer(core, Some(peer), req).await {
                Some(answer) => encode(id, api, version, &answer),
                None => Handled::NoAnswer,
            },
            Err(e) => Handled::Close(format!("malformed Produce v{version} request: {e}")),
        },
        ApiKey::FindCoordinator => serve!(FindCoordinatorRequest, |r| groups::find_coordinator(ctx, &r, version)),
        ApiKey::JoinGroup => serve!(JoinGroupRequest, |r| groups::join(core, &caller, r, version).await),
        ApiKey::SyncGroup => serve!(SyncGroupRequest, |r| groups::sync(core, r).await),
        ApiKey::Heartbeat => serve!(HeartbeatRequest, |r| groups::heartbeat(core, r).await),
        ApiKey::LeaveGroup => serve!(LeaveGroupRequest, |r| groups::leave(core, r, version).await),
        ApiKey::ListGroups => serve!(ListGroupsRequest, |r| groups::list(core, &r).await),
        ApiKey::DescribeGroups => serve!(DescribeGroupsRequest, |r| groups::describe(core, r).await),
        ApiKey::OffsetCommit => serve!(OffsetCommitRequest, |r| commits::commit(core, r).await),
        ApiKey::OffsetFetch => serve!(OffsetFetchRequest, |r| commits::fetch(core, r, version).await),
        ApiKey::CreateTopics => serve!(CreateTopicsRequest, |r| admin::create_topics(core, r).await),
        ApiKey::DeleteTopics => serve!(DeleteTopicsRequest, |r| admin::delete_topics(core, r, version).await),
        ApiKey::DescribeConfigs => serve!(DescribeConfigsRequest, |r| admin::describe_configs(core, r)),
        ApiKey::DeleteRecords => serve!(DeleteRecordsRequest, |r| admin::delete_records(core, r).await),
        other => Handled::Close(format!("{other:?} is not served")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answered_range_is_within_what_the_codec_knows() {
        for s in SERVED {
            let known = s.api.valid_versions();
            assert!(known.min <= s.min && s.max <= known.max, "{s:?} vs {known:?}");
            assert!(s.advertised_min <= s.min, "{s:?}");
        }
    }
}
