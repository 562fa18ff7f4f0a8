//! The `janusd` binary as a child process of the harness, so the broker's CPU can be measured alone: user +
//! system time of every thread it ever ran, from `/proc/<pid>/stat` (which keeps the time of threads that
//! have exited), in clock ticks (10 ms here).
//!
//! The binary is the one built beside `janus-exp` (`cargo build --release -p janus-server --bin janusd`), or
//! the one the `JANUSD` environment variable names.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

/// How long `janusd` may take to print its listening line, and to exit after SIGTERM.
const WAIT: Duration = Duration::from_secs(60);

/// A running `janusd`; killed (SIGKILL) and reaped if dropped before [`Janusd::stop`].
#[derive(Debug)]
pub struct Janusd {
    child: Child,
    /// Its gRPC address.
    pub grpc: SocketAddr,
    /// Its Kafka face's address.
    pub kafka: SocketAddr,
}

/// The `janusd` binary: `$JANUSD`, else `janusd` beside this executable.
fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("JANUSD") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating janus-exp")?;
    let path = exe.with_file_name("janusd");
    ensure!(
        path.exists(),
        "{} does not exist: build it with `cargo build --release -p janus-server --bin janusd` (or set JANUSD)",
        path.display()
    );
    Ok(path)
}

impl Janusd {
    /// Starts `janusd` on `data_dir` with loopback port-0 listeners and `sets` (`key=value` settings), and
    /// waits for its listening line. Its log goes to `janusd.log` beside `data_dir`.
    pub fn start(data_dir: &Path, sets: &[String]) -> Result<Janusd> {
        let log_path = data_dir.with_extension("janusd.log");
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(binary()?);
        cmd.arg("--data-dir").arg(data_dir).args(["--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"]);
        cmd.args(["--set", "kafka.listen=127.0.0.1:0"]);
        for set in sets {
            cmd.arg("--set").arg(set);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(log)).stdin(Stdio::null());
        let mut child = cmd.spawn().context("starting janusd")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("janusd's stdout is not piped"))?;
        let (tx, rx) = mpsc::channel();
        // Reads stdout to its end, so the broker never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let unknown = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut janusd = Janusd { child, grpc: unknown, kafka: unknown };
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .with_context(|| format!("janusd printed no listening line (its log: {})", log_path.display()))?;
            let Some(rest) = line.strip_prefix("janusd listening ") else { continue };
            for (name, addr) in rest.split_whitespace().filter_map(|pair| pair.split_once('=')) {
                let addr: SocketAddr = addr.parse().with_context(|| format!("janusd's {name} address {addr}"))?;
                match name {
                    "grpc" => janusd.grpc = addr,
                    "kafka" => janusd.kafka = addr,
                    _ => {}
                }
            }
            ensure!(
                janusd.grpc != unknown && janusd.kafka != unknown,
                "janusd's listening line lacks an address: {line}"
            );
            return Ok(janusd);
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the broker has used so far, over all its threads.
    pub fn cpu(&self) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).context("reading janusd's stat")?;
        let ticks = cpu_ticks(&stat).ok_or_else(|| anyhow!("unexpected /proc/<pid>/stat: {stat}"))?;
        Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_s()))
    }

    /// Shuts the broker down cleanly (SIGTERM) and waits for it to exit.
    pub fn stop(mut self) -> Result<()> {
        let pid = nix::libc::pid_t::try_from(self.child.id()).context("janusd's pid")?;
        // SAFETY: kill(2) with a valid signal number reads no memory; `pid` is our own child, not yet reaped
        // (the `Child` still owns it), so the id cannot have been reused by another process.
        if unsafe { nix::libc::kill(pid, nix::libc::SIGTERM) } != 0 {
            bail!("signalling janusd: {}", std::io::Error::last_os_error());
        }
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "janusd exited with {status} after SIGTERM");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("janusd did not exit within {WAIT:?} of SIGTERM")
    }
}

impl Drop for Janusd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command name (field
/// 2) is in parentheses and may hold spaces, so fields are counted after its closing parenthesis.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) and stime (15) are the 12th and 13th words.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`; 100 if it cannot be read).
fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf(3) takes an integer name and reads no memory of ours.
    let ticks = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (janus d) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_ticks(&own).is_some(), "{own}");
        assert!(clock_ticks_per_s() >= 1.0);
    }
}
