//! Password hashing with argon2id (the `argon2` crate: RustCrypto, pure Rust, PHC strings).
//!
//! One hash takes 19 MiB and tens of milliseconds of one core, by design. Left to the blocking
//! pool, a burst of logins got a thread and a fresh 19 MiB each and the memory was never given
//! back (7 GB for 400 logins at 64 in flight). So hashing runs on a small fixed pool instead:
//! one thread per core, each with its own argon2 memory allocated once and reused, so hashing
//! never holds more than `threads × 19 MiB`. Requests beyond the pool wait in a bounded queue;
//! when even that stays full for [`QUEUE_WAIT`], the caller gets `Unavailable` (503 with
//! `Retry-After`) instead of memory.

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use yunlian_domain::Error;

/// Jobs that may wait for a hashing thread.
pub const QUEUE: usize = 64;
/// How long a job may wait for room in the queue before the caller is told to retry.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

enum Job {
    Hash(String, oneshot::Sender<Result<String, Error>>),
    Verify(String, Option<String>, oneshot::Sender<Result<bool, Error>>),
}

fn pool() -> &'static mpsc::Sender<Job> {
    static POOL: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("yunlian-argon2-{i}"))
                .spawn(move || worker(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        tx
    })
}

/// One hashing thread: takes jobs until the process ends, reusing its argon2 memory.
fn worker(rx: &std::sync::Mutex<mpsc::Receiver<Job>>) {
    let mut memory = vec![Block::default(); Params::DEFAULT.block_count()];
    loop {
        let job = {
            let mut guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            guard.blocking_recv()
        };
        match job {
            None => return,
            Some(Job::Hash(password, reply)) => {
                let _ = reply.send(hash_now(&password, &mut memory));
            }
            Some(Job::Verify(password, stored, reply)) => {
                let _ = reply.send(verify_now(&password, stored, &mut memory));
            }
        }
    }
}

async fn submit<T>(make: impl FnOnce(oneshot::Sender<T>) -> Job) -> Result<T, Error> {
    let (tx, rx) = oneshot::channel();
    pool()
        .send_timeout(make(tx), QUEUE_WAIT)
        .await
        .map_err(|_| Error::Unavailable("password hashing is saturated".into()))?;
    rx.await
        .map_err(|_| Error::Internal("password hashing thread ended".into()))
}

pub async fn hash(password: &str) -> Result<String, Error> {
    let password = password.to_owned();
    submit(|tx| Job::Hash(password, tx)).await?
}

/// Checks a password against a stored PHC hash. With no hash (unknown phone, or a member who
/// has no password yet) it still spends the same work, so timing does not tell which.
pub async fn verify(password: &str, stored: Option<String>) -> Result<bool, Error> {
    let password = password.to_owned();
    submit(|tx| Job::Verify(password, stored, tx)).await?
}

fn argon_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("argon2: {e}"))
}

/// argon2id with the crate's default parameters into `memory`, as a PHC string.
fn hash_now(password: &str, memory: &mut [Block]) -> Result<String, Error> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(argon_error)?;
    let params = Params::DEFAULT;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt_bytes, &mut out, memory)
        .map_err(argon_error)?;
    let out = Output::new(&out).map_err(argon_error)?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        out
    ))
}

/// Recomputes a stored PHC hash from `password` in `memory` (or a buffer of its own, for a
/// stored hash with larger parameters) and compares in constant time.
fn verify_now(password: &str, stored: Option<String>, memory: &mut [Block]) -> Result<bool, Error> {
    let known = stored.is_some();
    let phc = stored.unwrap_or_else(|| DUMMY.to_string());
    let parsed = PasswordHash::new(&phc).map_err(argon_error)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(argon_error)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(argon_error)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(argon_error)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(argon_error("stored hash lacks a salt or an output"));
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(argon_error)?;
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut own;
    let blocks = if params.block_count() <= memory.len() {
        &mut memory[..params.block_count()]
    } else {
        own = vec![Block::default(); params.block_count()];
        &mut own[..]
    };
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
        .map_err(argon_error)?;
    let ok = Output::new(&out).map_err(argon_error)? == expected;
    Ok(ok && known)
}

/// The argon2id hash of a random string nobody knows, with default parameters.
const DUMMY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Vqp1n1w0YwP2Hc9oR1n1q3v6d8m2b0w7yq6GZ0Qy0M";

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, SaltString};

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = super::hash("党建abc12345").await.expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(super::verify("党建abc12345", Some(h.clone()))
            .await
            .expect("verify"));
        assert!(!super::verify("党建abc12346", Some(h))
            .await
            .expect("verify"));
        assert!(!super::verify("anything1", None).await.expect("verify"));
    }

    #[tokio::test]
    async fn hashes_made_by_the_crates_own_hasher_still_verify() {
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let h = argon2::Argon2::default()
            .hash_password(b"dangyuan2026", &salt)
            .expect("hash")
            .to_string();
        assert!(super::verify("dangyuan2026", Some(h.clone()))
            .await
            .expect("verify"));
        assert!(!super::verify("dangyuan2027", Some(h))
            .await
            .expect("verify"));
    }
}
