//! `latchkey luks edit` without `-c`: the binding's config in the operator's
//! editor, as `clevis luks edit` does it.
//!
//! ```text
//!   config (as `list` shows it) ─▶ pretty, in a private temporary file ─▶ $EDITOR FILE (default vi)
//!        ─▶ a JSON object? ── no ─▶ "edit again?" on stdin ─▶ y: the editor again; else give up
//!                          └─ yes ─▶ the new config
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::tty;

/// The editor clevis falls back to.
const DEFAULT_EDITOR: &str = "vi";

/// Lets the operator edit `config` (JSON text); the edited object, or `None`
/// when it is malformed and the operator does not want to edit it again.
pub fn edit(config: &str) -> Result<Option<Value>> {
    let editor = editor()?;
    let dir = tempfile::Builder::new()
        .prefix("latchkey-edit.")
        .tempdir()
        .context("making a directory for the config to edit")?;
    let file = dir.path().join("cfg");
    std::fs::write(&file, format!("{}\n", pretty(config)))
        .with_context(|| format!("writing {}", file.display()))?;
    loop {
        // As clevis, what the editor exits with does not matter, only the file.
        Command::new(&editor)
            .arg(&file)
            .status()
            .with_context(|| format!("running the editor {}", editor.display()))?;
        let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&text) {
            return Ok(Some(v));
        }
        let again =
            tty::ask_stdin("Malformed configuration. Would you like to edit again? [ynYN] ");
        if !matches!(again.as_deref(), Some("y" | "Y")) {
            return Ok(None);
        }
    }
}

/// `$EDITOR` (one program, as clevis runs it), else vi: a path, or a program
/// found on PATH.
fn editor() -> Result<PathBuf> {
    let name = std::env::var_os("EDITOR")
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_EDITOR.into());
    let name = PathBuf::from(name);
    let found = if name.components().count() > 1 || name.is_absolute() {
        executable(&name).then(|| name.clone())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(&name))
                .find(|p| executable(p))
        })
    };
    match found {
        Some(p) => Ok(p),
        None => bail!(
            "Editor '{}' not found. \nPlease define a valid text editor with the EDITOR \
             environment variable.",
            name.display()
        ),
    }
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `jq .` of JSON text: two-space indentation, `"key": value`, members in the
/// order written (a `serde_json::Value` would sort them). Strings are kept as
/// written; the text must already be valid JSON.
pub fn pretty(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let mut chars = json.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                while let Some(s) = chars.next() {
                    out.push(s);
                    match s {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                out.push(c);
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_is_jq_and_keeps_the_order() {
        // `printf %s "$cfg" | jq --monochrome-output .` (jq 1.6).
        let sss = r#"{"t":2,"pins":{"tang":[{"url":"http://a, b:c"},{"url":"http://x\"y"}],"tpm2":[],"sss":{}}}"#;
        assert_eq!(
            pretty(sss),
            r#"{
  "t": 2,
  "pins": {
    "tang": [
      {
        "url": "http://a, b:c"
      },
      {
        "url": "http://x\"y"
      }
    ],
    "tpm2": [],
    "sss": {}
  }
}"#
        );
        assert_eq!(
            pretty(r#" { "url" : "http://t" } "#),
            "{\n  \"url\": \"http://t\"\n}"
        );
        assert_eq!(pretty("{ }"), "{}");
    }
}
