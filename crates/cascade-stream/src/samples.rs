//! The labelled samples the join produces, as a JSON-lines file for the
//! online trainer.
//!
//! Exactly once across crashes: a checkpoint records the file's length
//! (after an fsync) beside the log offset, and reopening truncates the file
//! back to that length before the events after the offset are replayed, so
//! the samples they produce are written once.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::join::LabelledSample;
use crate::processor::StreamError;

/// An append-only file of labelled samples.
#[derive(Debug)]
pub struct SampleLog {
    path: PathBuf,
    file: BufWriter<File>,
    /// Bytes written, flushed or not.
    len: u64,
}

impl SampleLog {
    /// Opens `path`, cut back to its first `keep_bytes` bytes (what the
    /// checkpoint being resumed had made durable).
    pub fn open(path: &Path, keep_bytes: u64) -> Result<SampleLog, StreamError> {
        let fail = |e: std::io::Error| StreamError::Checkpoint {
            path: path.to_owned(),
            message: e.to_string(),
        };
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory).map_err(fail)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(fail)?;
        let existing = file.metadata().map_err(fail)?.len();
        if existing < keep_bytes {
            return Err(StreamError::Checkpoint {
                path: path.to_owned(),
                message: format!(
                    "{existing} bytes, but the checkpoint recorded {keep_bytes}: samples were lost"
                ),
            });
        }
        file.set_len(keep_bytes).map_err(fail)?;
        Ok(SampleLog { path: path.to_owned(), file: BufWriter::new(file), len: keep_bytes })
    }

    /// Appends `samples`, one JSON object per line (buffered).
    pub fn append(&mut self, samples: &[LabelledSample]) -> Result<(), StreamError> {
        for sample in samples {
            let mut line = serde_json::to_vec(sample).map_err(|e| self.fail(e.into()))?;
            line.push(b'\n');
            self.file.write_all(&line).map_err(|e| self.fail(e))?;
            self.len += line.len() as u64;
        }
        Ok(())
    }

    /// Makes everything appended durable; returns the file's length.
    pub fn sync(&mut self) -> Result<u64, StreamError> {
        self.file.flush().map_err(|e| self.fail(e))?;
        self.file.get_ref().sync_data().map_err(|e| self.fail(e))?;
        Ok(self.len)
    }

    fn fail(&self, e: std::io::Error) -> StreamError {
        StreamError::Checkpoint { path: self.path.clone(), message: e.to_string() }
    }
}

/// Every sample in a sample log, in order.
pub fn read_samples(path: &Path) -> Result<Vec<LabelledSample>, StreamError> {
    let fail = |line: usize, message: String| StreamError::Checkpoint {
        path: path.to_owned(),
        message: format!("line {line}: {message}"),
    };
    let file = File::open(path).map_err(|e| fail(0, e.to_string()))?;
    let mut samples = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| fail(index + 1, e.to_string()))?;
        samples.push(serde_json::from_str(&line).map_err(|e| fail(index + 1, e.to_string()))?);
    }
    Ok(samples)
}
