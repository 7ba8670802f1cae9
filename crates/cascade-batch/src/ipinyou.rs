//! The IPINYOU-SAMPLE protocol's data: `label idx:1 …` rows over 16 one-hot
//! fields (`train.fm.txt`, `test.fm.txt`), with `featindex.fm.txt` mapping
//! `field:value` to each index. Train is the first 90% of train rows,
//! validation the last 10%, test the test file.

use std::collections::HashMap;
use std::path::Path;

use crate::BatchError;

/// One row: its click label and one feature index per field, in field order.
pub type IpinyouRow = (bool, Vec<u64>);

/// The three parts and the field names.
#[derive(Debug, Clone)]
pub struct IpinyouSample {
    /// Field names in the order every row carries them.
    pub field_names: Vec<String>,
    /// First 90% of `train.fm.txt`.
    pub train: Vec<IpinyouRow>,
    /// Last 10% of `train.fm.txt`.
    pub valid: Vec<IpinyouRow>,
    /// `test.fm.txt`.
    pub test: Vec<IpinyouRow>,
}

fn read(path: &Path) -> Result<String, BatchError> {
    std::fs::read_to_string(path).map_err(|e| BatchError::file(path, e))
}

/// Index → field position, and the field names in order of first appearance.
fn field_index(path: &Path) -> Result<(HashMap<u64, usize>, Vec<String>), BatchError> {
    let mut fields: Vec<String> = Vec::new();
    let mut by_index = HashMap::new();
    for (n, line) in read(path)?.lines().enumerate() {
        let bad = |what: &str| BatchError::file(path, format!("line {}: {what}: `{line}`", n + 1));
        let (key, index) =
            line.rsplit_once('\t').ok_or_else(|| bad("expected `field:value<TAB>index`"))?;
        let field = key.split_once(':').ok_or_else(|| bad("expected `field:value`"))?.0;
        let index: u64 = index.trim().parse().map_err(|_| bad("the index is not a number"))?;
        let position = match fields.iter().position(|f| f == field) {
            Some(p) => p,
            None => {
                fields.push(field.to_owned());
                fields.len() - 1
            }
        };
        by_index.insert(index, position);
    }
    Ok((by_index, fields))
}

fn rows(
    path: &Path,
    by_index: &HashMap<u64, usize>,
    n_fields: usize,
) -> Result<Vec<IpinyouRow>, BatchError> {
    let mut out = Vec::new();
    for (n, line) in read(path)?.lines().enumerate() {
        let bad = |what: String| BatchError::file(path, format!("line {}: {what}", n + 1));
        let mut tokens = line.split_whitespace();
        let label = match tokens.next() {
            Some("1") => true,
            Some("0") => false,
            other => return Err(bad(format!("label must be 0 or 1, got {other:?}"))),
        };
        let mut ids = vec![None; n_fields];
        for token in tokens {
            let index: u64 = token
                .split_once(':')
                .and_then(|(i, _)| i.parse().ok())
                .ok_or_else(|| bad(format!("expected `index:1`, got `{token}`")))?;
            let field = *by_index
                .get(&index)
                .ok_or_else(|| bad(format!("index {index} is not in featindex.fm.txt")))?;
            if ids[field].replace(index).is_some() {
                return Err(bad(format!("field {field} has two values")));
            }
        }
        let ids = ids
            .into_iter()
            .enumerate()
            .map(|(f, id)| id.ok_or_else(|| bad(format!("field {f} has no value"))))
            .collect::<Result<Vec<u64>, _>>()?;
        out.push((label, ids));
    }
    Ok(out)
}

/// Reads the sample from `dir` and splits it as PROTOCOLS.md says.
pub fn load(dir: &Path) -> Result<IpinyouSample, BatchError> {
    let (by_index, field_names) = field_index(&dir.join("featindex.fm.txt"))?;
    let mut train = rows(&dir.join("train.fm.txt"), &by_index, field_names.len())?;
    let test = rows(&dir.join("test.fm.txt"), &by_index, field_names.len())?;
    let valid = train.split_off(train.len() * 9 / 10);
    Ok(IpinyouSample { field_names, train, valid, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rows_name_the_file_line_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("featindex.fm.txt"), "a:x\t0\na:y\t1\nb:z\t2\n").unwrap();
        std::fs::write(dir.path().join("train.fm.txt"), "0 0:1 2:1\n1 1:1 2:1\n").unwrap();
        std::fs::write(dir.path().join("test.fm.txt"), "1 0:1 2:1\n0 0:1 1:1\n").unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("test.fm.txt: line 2: field 0 has two values"), "{error}");
        std::fs::write(dir.path().join("test.fm.txt"), "1 0:1 2:1\n0 0:1 7:1\n").unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("line 2: index 7 is not in featindex"), "{error}");
        std::fs::write(dir.path().join("test.fm.txt"), "1 0:1 2:1\n").unwrap();
        let sample = load(dir.path()).unwrap();
        assert_eq!(sample.field_names, vec!["a", "b"]);
        assert_eq!(sample.test, vec![(true, vec![0, 2])]);
        assert_eq!((sample.train.len(), sample.valid.len()), (1, 1));
    }
}
