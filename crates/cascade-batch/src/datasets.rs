//! Public datasets: where to get them and how to know they are intact.
//!
//! MovieLens-100k may not be redistributed, so Cascade never ships it: it
//! either downloads the official GroupLens archive over HTTPS, or takes a copy
//! the user already has (`--from DIR`, or the `CASCADE_DATA_DIR` environment
//! variable). Either way every file the importer reads is checked against its
//! published SHA-256 before use, and a download is also checked against the
//! archive's published MD5.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

/// The official archive.
pub const MOVIELENS_100K_URL: &str = "https://files.grouplens.org/datasets/movielens/ml-100k.zip";
/// MD5 that GroupLens publishes for the archive.
pub const MOVIELENS_100K_ZIP_MD5: &str = "0e33842e24a9c977be4e0107933c0723";
/// Environment variable naming a directory that holds an already-downloaded copy.
pub const DATA_DIR_ENV: &str = "CASCADE_DATA_DIR";

/// The files Cascade reads, with their SHA-256 (the GroupLens originals).
pub const MOVIELENS_100K_FILES: [(&str, &str); 5] = [
    ("u.data", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
    ("u.item", "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
    ("u.user", "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
    ("u.genre", "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb"),
    ("u.occupation", "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d"),
];

/// Why a dataset is not usable.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file is missing or unreadable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file's checksum differs from the published one.
    #[error(
        "{path}: {algorithm} is {actual}, expected {expected}: the copy is altered or truncated; fetch it again"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// `sha256` or `md5`.
        algorithm: &'static str,
        /// What it is.
        actual: String,
        /// What it should be.
        expected: String,
    },
    /// The download failed.
    #[error("downloading {url}: {message} (no internet? pass --from DIR or set {DATA_DIR_ENV})")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

fn sha256_file(path: &Path) -> Result<String, DatasetError> {
    let bytes = std::fs::read(path)
        .map_err(|e| DatasetError::File { path: path.to_owned(), message: e.to_string() })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Checks that `dir` holds intact MovieLens-100k files.
pub fn verify_movielens_100k(dir: &Path) -> Result<(), DatasetError> {
    for (name, expected) in MOVIELENS_100K_FILES {
        let path = dir.join(name);
        let actual = sha256_file(&path)?;
        if actual != expected {
            return Err(DatasetError::Checksum {
                path,
                algorithm: "sha256",
                actual,
                expected: expected.into(),
            });
        }
    }
    Ok(())
}

/// The local copy tests use: `CASCADE_DATA_DIR` if set (it must then hold the
/// data: CI sets it, and a missing copy there is a failure), else
/// `../shared/data/ml-100k` beside the repository at `repo_root`. `None`, with
/// a message, when neither exists, so a developer without the data can still
/// run the rest of the suite.
pub fn movielens_100k_for_tests(repo_root: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).map(PathBuf::from) {
        assert!(dir.join("u.data").exists(), "{DATA_DIR_ENV}={} has no u.data", dir.display());
        return Some(dir);
    }
    let default = repo_root.join("../shared/data/ml-100k");
    if default.join("u.data").exists() {
        Some(default)
    } else {
        eprintln!("SKIPPED: MovieLens-100k not found; set {DATA_DIR_ENV}");
        None
    }
}

/// Where MovieLens-100k comes from, in order of preference.
#[derive(Debug, Clone, PartialEq)]
pub enum MovieLensSource {
    /// A directory given on the command line.
    From(PathBuf),
    /// The directory named by `CASCADE_DATA_DIR`.
    Environment(PathBuf),
    /// A previous download in the workspace.
    Cached(PathBuf),
    /// Nothing local: download into this directory.
    Download(PathBuf),
}

impl MovieLensSource {
    /// Decides where the data comes from: `--from`, then the environment, then
    /// a previous download under `cache_dir`, else a download into it.
    pub fn resolve(from: Option<&Path>, cache_dir: &Path) -> MovieLensSource {
        if let Some(dir) = from {
            return MovieLensSource::From(dir.to_owned());
        }
        if let Some(dir) = std::env::var_os(DATA_DIR_ENV) {
            return MovieLensSource::Environment(PathBuf::from(dir));
        }
        let cached = cache_dir.join("ml-100k");
        if cached.join("u.data").exists() {
            MovieLensSource::Cached(cached)
        } else {
            MovieLensSource::Download(cache_dir.to_owned())
        }
    }
}

/// Downloads and unpacks the official archive into `<cache_dir>/ml-100k`,
/// checking MD5 and every file's SHA-256; returns that directory.
/// `progress(downloaded, total)` is called as bytes arrive.
pub fn download_movielens_100k(
    cache_dir: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<PathBuf, DatasetError> {
    let url = MOVIELENS_100K_URL;
    let fail = |message: String| DatasetError::Download { url: url.into(), message };
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| DatasetError::File { path: cache_dir.to_owned(), message: e.to_string() })?;
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let total =
        response.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
    let mut reader = response.into_body().into_with_config().limit(64 * 1024 * 1024).reader();
    let mut archive = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buffer).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        archive.extend_from_slice(&buffer[..n]);
        progress(archive.len() as u64, total);
    }
    let md5 = hex::encode(Md5::digest(&archive));
    let zip_path = cache_dir.join("ml-100k.zip");
    if md5 != MOVIELENS_100K_ZIP_MD5 {
        return Err(DatasetError::Checksum {
            path: zip_path,
            algorithm: "md5",
            actual: md5,
            expected: MOVIELENS_100K_ZIP_MD5.into(),
        });
    }
    unpack(&archive, &cache_dir.join("ml-100k"))
}

/// Extracts the files Cascade reads (and the licence README) from the archive.
fn unpack(archive: &[u8], target: &Path) -> Result<PathBuf, DatasetError> {
    let file_error = |path: &Path, e: &dyn std::fmt::Display| DatasetError::File {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(archive)).map_err(|e| file_error(target, &e))?;
    std::fs::create_dir_all(target).map_err(|e| file_error(target, &e))?;
    let names = MOVIELENS_100K_FILES.iter().map(|(name, _)| *name).chain(["README"]);
    for name in names {
        let mut entry = zip
            .by_name(&format!("ml-100k/{name}"))
            .map_err(|e| file_error(&target.join(name), &e))?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| file_error(&target.join(name), &e))?;
        let path = target.join(name);
        let mut out = std::fs::File::create(&path).map_err(|e| file_error(&path, &e))?;
        out.write_all(&bytes).map_err(|e| file_error(&path, &e))?;
    }
    verify_movielens_100k(target)?;
    Ok(target.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_copy_is_rejected_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for (name, _) in MOVIELENS_100K_FILES {
            std::fs::write(dir.path().join(name), b"not movielens").unwrap();
        }
        let err = verify_movielens_100k(dir.path()).unwrap_err().to_string();
        assert!(err.contains("u.data") && err.contains("sha256"), "{err}");
    }

    #[test]
    fn a_missing_copy_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify_movielens_100k(dir.path()).unwrap_err().to_string();
        assert!(err.contains("u.data"), "{err}");
    }

    #[test]
    fn from_beats_everything() {
        let source = MovieLensSource::resolve(Some(Path::new("/x")), Path::new("/cache"));
        assert_eq!(source, MovieLensSource::From("/x".into()));
    }

    #[test]
    fn unpacks_and_verifies_an_archive() {
        // Build an archive in the official layout from a verified local copy, if present.
        let Some(original) = std::env::var_os(DATA_DIR_ENV).map(PathBuf::from).or_else(|| {
            let dir =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ml-100k");
            dir.join("u.data").exists().then_some(dir)
        }) else {
            eprintln!("SKIPPED: MovieLens-100k not found; set {DATA_DIR_ENV}");
            return;
        };
        let mut buffer = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default();
            for name in MOVIELENS_100K_FILES.iter().map(|(n, _)| *n).chain(["README"]) {
                zip.start_file(format!("ml-100k/{name}"), options).unwrap();
                zip.write_all(&std::fs::read(original.join(name)).unwrap()).unwrap();
            }
            zip.finish().unwrap();
        }
        let target = tempfile::tempdir().unwrap();
        let dir = unpack(buffer.get_ref(), &target.path().join("ml-100k")).unwrap();
        verify_movielens_100k(&dir).unwrap();
    }
}
