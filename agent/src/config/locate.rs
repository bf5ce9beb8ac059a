//! Maps a problem's key path (`instance[1].advert_interval`) to its line in the file.
use toml_edit::{Document, Item, Table, TableLike, Value};

use super::Problem;

/// 1-based line of byte `offset`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// Fills in `line` for every problem whose key can be found.
pub fn lines(text: &str, problems: &mut [Problem]) {
    let Ok(doc) = Document::parse(text) else {
        return;
    };
    for p in problems.iter_mut() {
        p.line = span_of(doc.as_item(), &p.key).map(|off| line_of(text, off));
    }
}

/// A place in the document: items, tables of an array of tables, and array values differ
/// in type, so the walk carries whichever it is at.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn table(self) -> Option<&'a dyn TableLike> {
        match self {
            Node::Item(i) => i.as_table_like(),
            Node::Table(t) => Some(t),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }

    fn index(self, i: usize) -> Option<Node<'a>> {
        match self {
            Node::Item(Item::ArrayOfTables(a)) => a.get(i).map(Node::Table),
            Node::Item(Item::Value(v)) | Node::Value(v) => v.as_array()?.get(i).map(Node::Value),
            _ => None,
        }
    }

    fn start(self) -> Option<usize> {
        match self {
            Node::Item(i) => i.span(),
            Node::Table(t) => t.span(),
            Node::Value(v) => v.span(),
        }
        .map(|s| s.start)
    }
}

/// Start offset of the deepest part of `path` that exists in the document.
fn span_of(root: &Item, path: &str) -> Option<usize> {
    let mut node = Node::Item(root);
    let mut best = None;
    for seg in path.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let Some((key, next)) = node.table().and_then(|t| t.get_key_value(name)) else {
            break;
        };
        best = key.span().map(|s| s.start).or(best);
        node = Node::Item(next);
        if let Some(i) = index {
            let Some(n) = node.index(i) else { break };
            best = n.start().or(best);
            node = n;
        }
    }
    best
}
