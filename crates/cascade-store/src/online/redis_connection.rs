//! One synchronous connection to a Redis server, shared behind a lock, that
//! reconnects once when the server dropped it.

use super::OnlineStoreError;
use parking_lot::Mutex;

/// A Redis connection and the URL it came from, with the password removed
/// for error messages.
pub struct RedisConnection {
    client: redis::Client,
    shown_url: String,
    connection: Mutex<Option<redis::Connection>>,
}

impl RedisConnection {
    /// Connects to `url` (`redis://host:port/db`), failing now rather than
    /// at the first command when the server is not there.
    pub fn open(url: &str) -> Result<RedisConnection, OnlineStoreError> {
        let shown_url = match url.rsplit_once('@') {
            Some((_, host)) => format!("redis://…@{host}"),
            None => url.to_owned(),
        };
        let fail = |e: redis::RedisError| OnlineStoreError::Redis {
            url: shown_url.clone(),
            message: e.to_string(),
        };
        let client = redis::Client::open(url).map_err(fail)?;
        let connection = client.get_connection().map_err(fail)?;
        Ok(RedisConnection { client, shown_url, connection: Mutex::new(Some(connection)) })
    }

    /// The error for `message`, naming the server.
    pub fn error(&self, message: impl std::fmt::Display) -> OnlineStoreError {
        OnlineStoreError::Redis { url: self.shown_url.clone(), message: message.to_string() }
    }

    /// Runs `body` on the connection. After an I/O error (the server
    /// restarted, a proxy cut the link) it reconnects and runs `body` once
    /// more, so `body` must be safe to repeat: reads are; feature updates
    /// and forwarding are idempotent by their scripts' checks; a plain
    /// `XADD` is not (see `RedisEventBus::publish`).
    pub fn with<T>(
        &self,
        mut body: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, OnlineStoreError> {
        let mut slot = self.connection.lock();
        for attempt in 0..2 {
            let connection = match slot.as_mut() {
                Some(connection) => connection,
                None => slot.insert(self.client.get_connection().map_err(|e| self.error(e))?),
            };
            match body(connection) {
                Ok(value) => return Ok(value),
                Err(e) if attempt == 0 && (e.is_io_error() || e.is_connection_dropped()) => {
                    *slot = None;
                }
                Err(e) => return Err(self.error(e)),
            }
        }
        Err(self.error("the connection dropped twice in a row"))
    }
}
