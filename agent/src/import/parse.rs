//! keepalived.conf syntax: lines of words, `{ ... }` blocks, `#`/`!` comments, quoted
//! strings, and `include GLOB` (relative to the including file) spliced in place.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// One statement: its words, where it was written, and its block if it opened one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub words: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
    pub children: Option<Vec<Node>>,
}

impl Node {
    pub fn key(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
    pub fn children(&self) -> &[Node] {
        self.children.as_deref().unwrap_or(&[])
    }
    /// `file:line` for messages.
    pub fn at(&self) -> String {
        let name = self.file.file_name().map_or_else(
            || self.file.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        format!("{name}:{}", self.line)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Eol,
}

struct Located {
    tok: Tok,
    file: PathBuf,
    line: usize,
}

/// Splits one line into tokens; a comment runs to the end of the line.
fn tokenize_line(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '#' | '!' => break,
            c if c.is_whitespace() => {
                chars.next();
            }
            '{' => {
                chars.next();
                out.push(Tok::Open);
            }
            '}' => {
                chars.next();
                out.push(Tok::Close);
            }
            '"' => {
                chars.next();
                let mut w = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(n) = chars.next() {
                                w.push(n);
                            }
                        }
                        Some(c) => w.push(c),
                        None => return Err("unterminated quoted string".into()),
                    }
                }
                out.push(Tok::Word(w));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '{' || c == '}' {
                        break;
                    }
                    chars.next();
                    w.push(c);
                }
                out.push(Tok::Word(w));
            }
        }
    }
    out.push(Tok::Eol);
    Ok(out)
}

fn tokens(text: &str, file: &Path, depth: usize, out: &mut Vec<Located>) -> anyhow::Result<()> {
    if depth > 8 {
        bail!("{}: includes nested deeper than 8", file.display());
    }
    for (i, line) in text.lines().enumerate() {
        let toks = tokenize_line(line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))?;
        if let [Tok::Word(w), rest @ ..] = toks.as_slice() {
            if w == "include" {
                let Some(Tok::Word(pattern)) = rest.first() else {
                    bail!("{}:{}: include needs a path", file.display(), i + 1);
                };
                let base = file.parent().unwrap_or(Path::new("."));
                let full = if Path::new(pattern).is_absolute() {
                    PathBuf::from(pattern)
                } else {
                    base.join(pattern)
                };
                let mut matched: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
                    .with_context(|| format!("{}:{}: include pattern", file.display(), i + 1))?
                    .filter_map(Result::ok)
                    .collect();
                matched.sort();
                for m in matched {
                    let text = std::fs::read_to_string(&m)
                        .with_context(|| format!("reading {} (included)", m.display()))?;
                    tokens(&text, &m, depth + 1, out)?;
                }
                continue;
            }
        }
        out.extend(toks.into_iter().map(|tok| Located {
            tok,
            file: file.to_path_buf(),
            line: i + 1,
        }));
    }
    Ok(())
}

/// Parses `text` (read from `file`, which anchors relative includes).
pub fn parse(text: &str, file: &Path) -> anyhow::Result<Vec<Node>> {
    let mut toks = Vec::new();
    tokens(text, file, 0, &mut toks)?;
    let mut stack: Vec<Vec<Node>> = vec![Vec::new()];
    let mut open: Vec<Node> = Vec::new();
    let mut cur: Option<Node> = None;
    for t in toks {
        match t.tok {
            Tok::Word(w) => match &mut cur {
                Some(n) => n.words.push(w),
                None => {
                    cur = Some(Node {
                        words: vec![w],
                        file: t.file,
                        line: t.line,
                        children: None,
                    })
                }
            },
            Tok::Eol => {
                if let Some(n) = cur.take() {
                    stack.last_mut().expect("root").push(n);
                }
            }
            Tok::Open => {
                // `{` on its own line belongs to the statement before it.
                let header = match cur.take() {
                    Some(n) => n,
                    None => match stack.last_mut().and_then(Vec::pop) {
                        Some(n) if n.children.is_none() => n,
                        _ => bail!("{}:{}: `{{` without a keyword", t.file.display(), t.line),
                    },
                };
                open.push(header);
                stack.push(Vec::new());
            }
            Tok::Close => {
                if let Some(n) = cur.take() {
                    stack.last_mut().expect("root").push(n);
                }
                let Some(mut header) = open.pop() else {
                    bail!("{}:{}: `}}` without a block", t.file.display(), t.line);
                };
                header.children = Some(stack.pop().expect("block"));
                stack.last_mut().expect("root").push(header);
            }
        }
    }
    if let Some(h) = open.last() {
        bail!("{}: block `{}` is never closed", h.at(), h.words.join(" "));
    }
    if let Some(n) = cur.take() {
        stack.last_mut().expect("root").push(n);
    }
    Ok(stack.pop().expect("root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_comments_quotes_and_one_line_blocks() {
        let text = r#"
! Configuration File for keepalived
global_defs {
   router_id db1   # this node
}
vrrp_script chk { script "/bin/sh -c 'nc -z 127.0.0.1 3306'"
  interval 2 }
vrrp_instance VI_1
{
    unicast_peer { 192.0.2.12 192.0.2.13 }
    virtual_ipaddress {
        192.0.2.100/24 dev eth0 label eth0:1
    }
}
"#;
        let nodes = parse(text, Path::new("/x/keepalived.conf")).unwrap();
        assert_eq!(
            nodes.iter().map(Node::key).collect::<Vec<_>>(),
            ["global_defs", "vrrp_script", "vrrp_instance"]
        );
        assert_eq!(nodes[0].children()[0].words, ["router_id", "db1"]);
        assert_eq!(
            nodes[1].children()[0].words,
            ["script", "/bin/sh -c 'nc -z 127.0.0.1 3306'"]
        );
        assert_eq!(nodes[1].children()[1].words, ["interval", "2"]);
        let inst = &nodes[2];
        assert_eq!(inst.words, ["vrrp_instance", "VI_1"]);
        assert_eq!(
            inst.children()[0].children()[0].words,
            ["192.0.2.12", "192.0.2.13"]
        );
        assert_eq!(inst.children()[1].children()[0].arg(2), Some("eth0"));
        assert_eq!(inst.children()[1].line, 11);
    }

    #[test]
    fn unbalanced_braces_are_errors_naming_the_line() {
        let e = parse("vrrp_instance X {\n state MASTER\n", Path::new("k.conf")).unwrap_err();
        assert!(
            e.to_string()
                .contains("k.conf:1: block `vrrp_instance X` is never closed"),
            "{e}"
        );
        let e = parse("}\n", Path::new("k.conf")).unwrap_err();
        assert!(e.to_string().contains("k.conf:1"), "{e}");
        assert!(parse("script \"open\n", Path::new("k.conf")).is_err());
    }

    #[test]
    fn includes_are_spliced_relative_to_the_including_file() {
        let dir = std::env::temp_dir().join(format!("xvrrpd-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(
            dir.join("conf.d/b.conf"),
            "vrrp_script b {\n interval 1\n}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("conf.d/a.conf"),
            "vrrp_script a {\n interval 1\n}\n",
        )
        .unwrap();
        let main = dir.join("keepalived.conf");
        let nodes = parse("include conf.d/*.conf\nglobal_defs {\n}\n", &main).unwrap();
        assert_eq!(
            nodes.iter().map(|n| n.words.join(" ")).collect::<Vec<_>>(),
            ["vrrp_script a", "vrrp_script b", "global_defs"]
        );
        assert!(nodes[0].file.ends_with("conf.d/a.conf"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
