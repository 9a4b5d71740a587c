//! Object storage (images), behind `object_store`: a local directory by default (the
//! township's single box), any S3-compatible store by configuration (a county's MinIO, a
//! cloud bucket). Keys are ids the server made, never a name a user typed.

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use std::sync::Arc;
use yunlian_domain::Error;

#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    kind: &'static str,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.kind)
    }
}

/// Where objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory of this machine.
    Dir(std::path::PathBuf),
    /// A bucket of an S3-compatible store; credentials and region come from the standard
    /// `AWS_*` environment variables.
    S3 {
        bucket: String,
        endpoint: Option<String>,
    },
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("object store: {e}"))
}

impl Objects {
    pub fn open(at: &Location) -> Result<Objects, Error> {
        match at {
            Location::Dir(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
                let fs = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                Ok(Objects {
                    store: Arc::new(fs),
                    kind: "local",
                })
            }
            Location::S3 { bucket, endpoint } => {
                let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                let s3 = b
                    .build()
                    .map_err(|e| Error::Internal(format!("object store: {e}")))?;
                Ok(Objects {
                    store: Arc::new(s3),
                    kind: "s3",
                })
            }
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), Error> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// The object's bytes; `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
        match self.store.get(&Path::from(key)).await {
            Ok(r) => r.bytes().await.map(Some).map_err(unavailable),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }
}
