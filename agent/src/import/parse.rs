//! keepalived.conf syntax: lines of words, `{ ... }` blocks, `#`/`!` comments, quoted
//! strings, `include GLOB` (relative to the including file) spliced in place, and
//! per-host lines (`@ID line` only on the host whose config id is ID, `@^ID line` on every
//! other; a skipped line that opens a block skips the block).
//!
//! As lenient as keepalived where keepalived is: blocks left open at the end are closed
//! (keepalived warns "There are N missing '}'s" and runs), a `}` without a block is
//! ignored; both are warnings, as is every line meant for another host.
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

/// What reading the lines needs besides the text.
struct Reader<'a> {
    /// keepalived's `-i CONFIG_ID`: selects the `@ID` lines.
    config_id: &'a str,
    warnings: Vec<String>,
    /// Inside a block opened by a line for another host: its unclosed braces.
    skipping: usize,
}

impl Reader<'_> {
    /// A line's tokens as this host reads them: `@ID`/`@^ID` resolved (None: another
    /// host's line), and the block a skipped line opens skipped with it.
    fn select(&mut self, toks: Vec<Tok>, at: &str) -> Option<Vec<Tok>> {
        let braces = |toks: &[Tok]| {
            toks.iter().fold(0i64, |d, t| match t {
                Tok::Open => d + 1,
                Tok::Close => d - 1,
                _ => d,
            })
        };
        if self.skipping > 0 {
            self.skipping = (self.skipping as i64 + braces(&toks)).max(0) as usize;
            return None;
        }
        let Some(Tok::Word(w)) = toks.first() else {
            return Some(toks);
        };
        let Some(cond) = w.strip_prefix('@') else {
            return Some(toks);
        };
        let (id, wanted) = match cond.strip_prefix('^') {
            Some(id) => (id, false),
            None => (cond, true),
        };
        if (id == self.config_id) == wanted {
            return Some(toks[1..].to_vec());
        }
        self.warnings.push(format!(
            "{at}: line for {} (this config id is {:?}, --config-id to choose another): skipped",
            if wanted {
                format!("host {id:?}")
            } else {
                format!("every host but {id:?}")
            },
            self.config_id
        ));
        self.skipping = braces(&toks).max(0) as usize;
        None
    }
}

fn tokens(
    text: &str,
    file: &Path,
    depth: usize,
    r: &mut Reader,
    out: &mut Vec<Located>,
) -> anyhow::Result<()> {
    if depth > 8 {
        bail!("{}: includes nested deeper than 8", file.display());
    }
    // Warnings name the file as Node::at does.
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    for (i, line) in text.lines().enumerate() {
        let toks = tokenize_line(line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))?;
        let Some(toks) = r.select(toks, &format!("{name}:{}", i + 1)) else {
            continue;
        };
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
                    tokens(&text, &m, depth + 1, r, out)?;
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

/// Parses `text` (read from `file`, which anchors relative includes) as the host whose
/// config id is `config_id` reads it; also returns the warnings.
pub fn parse(text: &str, file: &Path, config_id: &str) -> anyhow::Result<(Vec<Node>, Vec<String>)> {
    let mut toks = Vec::new();
    let mut r = Reader {
        config_id,
        warnings: Vec::new(),
        skipping: 0,
    };
    tokens(text, file, 0, &mut r, &mut toks)?;
    let mut warnings = r.warnings;
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
                    warnings.push(format!(
                        "{}:{}: `}}` without a block: ignored (as keepalived does)",
                        t.file.display(),
                        t.line
                    ));
                    continue;
                };
                header.children = Some(stack.pop().expect("block"));
                stack.last_mut().expect("root").push(header);
            }
        }
    }
    if let Some(n) = cur.take() {
        stack.last_mut().expect("root").push(n);
    }
    // keepalived runs such a file, warning "There are N missing '}'s": close them here.
    while let Some(mut header) = open.pop() {
        warnings.push(format!(
            "{}: block `{}` is never closed: closed at the end of the file, as keepalived does; check that what follows it was meant to be inside",
            header.at(),
            header.words.join(" ")
        ));
        header.children = Some(stack.pop().expect("block"));
        stack.last_mut().expect("root").push(header);
    }
    Ok((stack.pop().expect("root"), warnings))
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
        let (nodes, warnings) = parse(text, Path::new("/x/keepalived.conf"), "db1").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
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
    fn unbalanced_braces_are_warnings_naming_the_line_as_keepalived_runs_them() {
        let (nodes, w) = parse(
            "vrrp_instance X {\n state MASTER\n virtual_ipaddress {\n 192.0.2.5\n",
            Path::new("k.conf"),
            "db1",
        )
        .unwrap();
        assert_eq!(nodes[0].children()[1].children()[0].words, ["192.0.2.5"]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[1].contains("k.conf:1: block `vrrp_instance X` is never closed"),
            "{w:?}"
        );
        let (nodes, w) = parse("}\nglobal_defs {\n}\n", Path::new("k.conf"), "db1").unwrap();
        assert_eq!(nodes.len(), 1);
        assert!(w[0].contains("k.conf:1: `}` without a block"), "{w:?}");
        assert!(parse("script \"open\n", Path::new("k.conf"), "db1").is_err());
    }

    #[test]
    fn per_host_lines_follow_the_config_id() {
        let text = "vrrp_instance V {\n @db1 priority 101\n @db2 priority 100\n @^db1 nopreempt\n @db2 track_script {\n  chk\n }\n state BACKUP\n}\n";
        let words = |id: &str| {
            let (nodes, w) = parse(text, Path::new("k.conf"), id).unwrap();
            let lines: Vec<String> = nodes[0]
                .children()
                .iter()
                .map(|n| n.words.join(" "))
                .collect();
            (lines, w)
        };
        let (db1, w) = words("db1");
        assert_eq!(db1, ["priority 101", "state BACKUP"]);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("k.conf:3: line for host \"db2\""), "{w:?}");
        assert!(
            w[1].contains("k.conf:4: line for every host but \"db1\""),
            "{w:?}"
        );
        let (db2, _) = words("db2");
        assert_eq!(
            db2,
            ["priority 100", "nopreempt", "track_script", "state BACKUP"]
        );
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
        let (nodes, _) = parse("include conf.d/*.conf\nglobal_defs {\n}\n", &main, "db1").unwrap();
        assert_eq!(
            nodes.iter().map(|n| n.words.join(" ")).collect::<Vec<_>>(),
            ["vrrp_script a", "vrrp_script b", "global_defs"]
        );
        assert!(nodes[0].file.ends_with("conf.d/a.conf"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
