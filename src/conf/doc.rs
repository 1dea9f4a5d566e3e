//! The config file as a spanned TOML document: `${ENV}` interpolation inside strings, and an
//! index from key paths (`sources[2].secrets[0]`) to lines, so every problem names its place.

use std::collections::HashMap;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::redact::Sensitive;
use super::ConfigError;

/// Line numbers of every key path in the file.
#[derive(Default, Debug)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

pub fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

pub fn index_lines(text: &str, table: &DeTable<'_>) -> LineIndex {
    let mut idx = LineIndex::default();
    for (k, v) in table.iter() {
        walk(text, k.get_ref(), v, &mut idx, k.span().start);
    }
    idx
}

fn walk(text: &str, path: &str, v: &Spanned<DeValue<'_>>, idx: &mut LineIndex, key_at: usize) {
    idx.lines.insert(path.to_string(), line_at(text, key_at));
    match v.get_ref() {
        DeValue::Table(t) => {
            for (k, c) in t.iter() {
                walk(
                    text,
                    &format!("{path}.{}", k.get_ref()),
                    c,
                    idx,
                    k.span().start,
                );
            }
        }
        DeValue::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                walk(text, &format!("{path}[{i}]"), c, idx, c.span().start);
            }
        }
        _ => {}
    }
}

/// Replace `${NAME}` in every string value by the environment variable NAME. `$${` stands for a
/// literal `${`. A missing variable is an error naming it and its key, never an empty string.
/// Every value taken from the environment is recorded in `sensitive`: no message may repeat it.
pub fn interpolate(
    table: &mut DeTable<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
    sensitive: &mut Sensitive,
) {
    let mut cx = Interp {
        env,
        errors,
        sensitive,
    };
    for (k, v) in table.iter_mut() {
        cx.value(k.get_ref(), v.get_mut());
    }
}

struct Interp<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: &'a mut Vec<ConfigError>,
    sensitive: &'a mut Sensitive,
}

impl Interp<'_> {
    fn value(&mut self, path: &str, v: &mut DeValue<'_>) {
        match v {
            DeValue::String(s) if s.contains('$') => {
                let env = self.env;
                let sensitive = &mut *self.sensitive;
                let recording = |name: &str| {
                    let val = env(name);
                    if let Some(v) = &val {
                        sensitive.add(v);
                    }
                    val
                };
                match expand(s, recording) {
                    Ok(out) => *s = out.into(),
                    Err(msg) => self.errors.push(ConfigError::at(path, msg)),
                }
            }
            DeValue::Table(t) => {
                for (k, c) in t.iter_mut() {
                    self.value(&format!("{path}.{}", k.get_ref()), c.get_mut());
                }
            }
            DeValue::Array(a) => {
                for (i, c) in a.iter_mut().enumerate() {
                    self.value(&format!("{path}[{i}]"), c.get_mut());
                }
            }
            _ => {}
        }
    }
}

pub fn expand(s: &str, mut env: impl FnMut(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| "unterminated ${...} reference".to_string())?;
            let name = &tail[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "invalid environment variable name {name:?} in ${{...}}"
                ));
            }
            match env(name) {
                Some(val) => out.push_str(&val),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_escapes() {
        assert_eq!(expand("x${A}y", &env).unwrap(), "xalphay");
        assert_eq!(expand("$${A}", &env).unwrap(), "${A}");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert!(expand("${MISSING}", &env).unwrap_err().contains("MISSING"));
        assert!(expand("${A", &env).is_err());
        assert!(expand("${1A}", &env).is_err());
    }
}
