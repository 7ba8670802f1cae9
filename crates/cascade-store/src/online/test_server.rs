//! A Redis server for tests: the one `CASCADE_REDIS_URL` names (CI starts
//! one on loopback), or else a private `redis-server` on a free loopback
//! port, stopped when dropped. Where neither is possible the tests that
//! need it skip with a message, except under CI, where that is a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A reachable Redis server and a key prefix no other test uses.
pub struct RedisForTests {
    /// `redis://127.0.0.1:port`.
    pub url: String,
    private_server: Option<(Child, tempfile::TempDir)>,
}

static PREFIXES: AtomicU64 = AtomicU64::new(0);

impl RedisForTests {
    /// A server, or `None` (after printing why) when none can run here.
    ///
    /// # Panics
    /// Under CI (`CI` set) when no server can be reached or started.
    pub fn start() -> Option<RedisForTests> {
        if let Ok(url) = std::env::var("CASCADE_REDIS_URL") {
            return Some(RedisForTests { url, private_server: None });
        }
        match Self::spawn() {
            Ok(server) => Some(server),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("CI must provide Redis (CASCADE_REDIS_URL or redis-server): {why}")
            }
            Err(why) => {
                eprintln!("skipping: no Redis server: {why}");
                None
            }
        }
    }

    fn spawn() -> Result<RedisForTests, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let server = RedisForTests {
            url: format!("redis://127.0.0.1:{port}"),
            private_server: Some((child, dir)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ping = redis::Client::open(server.url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match ping {
                Ok(_) => return Ok(server),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("redis-server on port {port} did not answer: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// A key prefix unique to this process and call, so tests sharing a
    /// server never see each other's keys.
    pub fn fresh_prefix(&self, name: &str) -> String {
        let n = PREFIXES.fetch_add(1, Ordering::Relaxed);
        format!("test:{}:{name}:{n}", std::process::id())
    }
}

impl Drop for RedisForTests {
    fn drop(&mut self) {
        if let Some((child, _dir)) = &mut self.private_server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
