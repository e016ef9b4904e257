//! The LFW pairs protocol: header `folds n`, then per fold `n` matched lines `name i j` and `n`
//! mismatched lines `name1 i name2 j`; images at `ROOT/name/name_%04d.jpg`.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub same: bool,
    pub fold: usize,
}

/// Parse a pairs file; image paths are resolved against `root`.
pub fn read_pairs(path: &Path, root: &Path) -> Result<Vec<Pair>, PairsError> {
    let text = std::fs::read_to_string(path).map_err(|source| PairsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_pairs(&text, root).map_err(|(line, message)| PairsError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    })
}

fn parse_pairs(text: &str, root: &Path) -> Result<Vec<Pair>, (usize, String)> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let (_, header) = lines.next().ok_or((1, "empty file".to_string()))?;
    let numbers: Vec<usize> = header
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| (1, format!("header must be `folds n`, found `{header}`")))?;
    let [folds, n] = numbers[..] else {
        return Err((1, format!("header must be `folds n`, found `{header}`")));
    };
    let image = |name: &str, index: &str, line: usize| -> Result<PathBuf, (usize, String)> {
        let i: u32 = index
            .parse()
            .map_err(|_| (line, format!("`{index}` is not an image number")))?;
        Ok(root.join(name).join(format!("{name}_{i:04}.jpg")))
    };
    let mut pairs = Vec::with_capacity(2 * folds * n);
    for k in 0..2 * folds * n {
        let (line, text) = lines
            .next()
            .ok_or((0, format!("expected {} pairs, found {k}", 2 * folds * n)))?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        let fold = k / (2 * n);
        let pair = match fields[..] {
            [name, i, j] => Pair {
                a: image(name, i, line)?,
                b: image(name, j, line)?,
                same: true,
                fold,
            },
            [n1, i, n2, j] => Pair {
                a: image(n1, i, line)?,
                b: image(n2, j, line)?,
                same: false,
                fold,
            },
            _ => {
                return Err((
                    line,
                    format!("expected `name i j` or `name1 i name2 j`, found `{text}`"),
                ))
            }
        };
        // Within a fold the first n lines are matched pairs and the next n mismatched.
        if pair.same != (k % (2 * n) < n) {
            return Err((
                line,
                "matched and mismatched pairs are out of order".to_string(),
            ));
        }
        pairs.push(pair);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folds_and_paths() {
        let text = "2 1\nAl 1 2\nAl 1 Bo 3\nCy 2 4\nCy 1 Di 1\n";
        let pairs = parse_pairs(text, Path::new("/r")).unwrap();
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs[0].a, PathBuf::from("/r/Al/Al_0001.jpg"));
        assert_eq!(pairs[1].b, PathBuf::from("/r/Bo/Bo_0003.jpg"));
        assert!(pairs[0].same && !pairs[1].same);
        assert_eq!(
            pairs.iter().map(|p| p.fold).collect::<Vec<_>>(),
            vec![0, 0, 1, 1]
        );
    }

    #[test]
    fn reports_bad_lines() {
        assert!(parse_pairs("1 1\nAl x 2\nAl 1 Bo 3\n", Path::new(".")).is_err());
        assert!(parse_pairs("1 1\nAl 1 Bo 3\nAl 1 2\n", Path::new(".")).is_err());
        assert!(parse_pairs("1 2\nAl 1 2\n", Path::new(".")).is_err());
    }
}
