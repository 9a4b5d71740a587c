//! Password hashing with argon2id (the `argon2` crate: RustCrypto, pure Rust, PHC strings).
//! Hashing is deliberately slow, so it runs on the blocking pool, never on an actix worker.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use yunlian_domain::Error;

pub async fn hash(password: &str) -> Result<String, Error> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|e| Error::Internal(format!("argon2 salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("argon2: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// Checks a password against a stored PHC hash. With no hash (unknown phone, or a member who
/// has no password yet) it still spends the same work, so timing does not tell which.
pub async fn verify(password: &str, stored: Option<String>) -> Result<bool, Error> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY.to_string());
        let parsed =
            PasswordHash::new(&phc).map_err(|e| Error::Internal(format!("argon2: {e}")))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && known)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// The argon2id hash of a random string nobody knows, with default parameters.
const DUMMY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Vqp1n1w0YwP2Hc9oR1n1q3v6d8m2b0w7yq6GZ0Qy0M";

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = super::hash("党建abc12345").await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("党建abc12345", Some(h.clone()))
            .await
            .expect("verify"));
        assert!(!super::verify("党建abc12346", Some(h))
            .await
            .expect("verify"));
        assert!(!super::verify("anything1", None).await.expect("verify"));
    }
}
