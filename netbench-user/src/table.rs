//! Aligned plain-text tables for the terminal renderers (report, run summary, doctor,
//! bench): no borders, cells separated by a gap, each column left or right aligned.
//!
//! A column either fits its widest cell (and header), or has a fixed width that a
//! longer cell overflows without moving the other rows, like `{:<24}` in `format!`.
//! Every line ends without trailing white space; a row may have fewer cells than
//! there are columns.
//!
//! ```
//! use netbench::table::{Column, Table};
//!
//! let mut t = Table::new([Column::left("stage"), Column::right("us").width(6)]);
//! t.row(["veth", "1.25"]).row(["bridge", "10.50"]);
//! assert_eq!(t.render(), "stage       us\nveth      1.25\nbridge   10.50\n");
//! ```
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One column: its header, alignment and width.
#[derive(Clone, Debug)]
pub struct Column {
    header: String,
    align: Align,
    /// `None`: as wide as the widest cell; `Some(n)`: at least `n`, never measured.
    width: Option<usize>,
}

impl Column {
    /// A left-aligned column as wide as its widest cell.
    #[must_use]
    pub fn left(header: impl Into<String>) -> Self {
        Self {
            header: header.into(),
            align: Align::Left,
            width: None,
        }
    }

    /// A right-aligned column as wide as its widest cell.
    #[must_use]
    pub fn right(header: impl Into<String>) -> Self {
        Self {
            align: Align::Right,
            ..Self::left(header)
        }
    }

    /// A fixed width: shorter cells are padded to it, longer ones overflow.
    #[must_use]
    pub fn width(mut self, width: usize) -> Self {
        self.width = Some(width);
        self
    }
}

/// A table: columns, then rows of cells, rendered with [`Table::render`].
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    indent: String,
    gap: String,
    header: bool,
}

impl Table {
    /// A table with a header line, no indent and two spaces between cells.
    #[must_use]
    pub fn new(columns: impl IntoIterator<Item = Column>) -> Self {
        Self {
            columns: columns.into_iter().collect(),
            rows: Vec::new(),
            indent: String::new(),
            gap: "  ".to_owned(),
            header: true,
        }
    }

    /// What every line starts with.
    #[must_use]
    pub fn indent(mut self, indent: &str) -> Self {
        indent.clone_into(&mut self.indent);
        self
    }

    /// What stands between two cells.
    #[must_use]
    pub fn gap(mut self, gap: &str) -> Self {
        gap.clone_into(&mut self.gap);
        self
    }

    /// No header line (the headers then count for no column's width).
    #[must_use]
    pub fn without_header(mut self) -> Self {
        self.header = false;
        self
    }

    /// Adds a row; it may have fewer cells than there are columns.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The header (when shown) and the rows, one line each, each ending in `\n`.
    #[must_use]
    pub fn render(&self) -> String {
        let header: Option<Vec<&str>> = self
            .header
            .then(|| self.columns.iter().map(|c| c.header.as_str()).collect());
        let lines: Vec<Vec<&str>> = header
            .into_iter()
            .chain(
                self.rows
                    .iter()
                    .map(|r| r.iter().map(String::as_str).collect()),
            )
            .collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.columns[i].width.unwrap_or_else(|| {
                    lines
                        .iter()
                        .filter_map(|line| line.get(i))
                        .map(|cell| cell.chars().count())
                        .max()
                        .unwrap_or(0)
                })
            })
            .collect();
        let mut out = String::new();
        for cells in lines {
            let mut line = self.indent.clone();
            for (i, cell) in cells.into_iter().enumerate() {
                if i > 0 {
                    line.push_str(&self.gap);
                }
                let w = widths.get(i).copied().unwrap_or(0);
                let _ = match self.columns.get(i).map_or(Align::Left, |c| c.align) {
                    Align::Left => write!(line, "{cell:<w$}"),
                    Align::Right => write!(line, "{cell:>w$}"),
                };
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_columns_take_the_widest_cell_or_header() {
        let mut t = Table::new([
            Column::left("ITEM"),
            Column::left("STATUS"),
            Column::left("DETAIL"),
        ]);
        t.row(["root", "ok", "uid 0"])
            .row(["btf-long", "missing", ""]);
        assert_eq!(
            t.render(),
            "ITEM      STATUS   DETAIL\n\
             root      ok       uid 0\n\
             btf-long  missing\n"
        );
    }

    #[test]
    fn fixed_columns_overflow_indent_gap_and_short_rows() {
        let mut t = Table::new([Column::left("a").width(3), Column::right("b").width(4)])
            .indent("  ")
            .gap(" ");
        t.row(["xy", "1.5"]).row(["toolong", "2"]).row(["z"]);
        assert_eq!(t.render(), "  a      b\n  xy   1.5\n  toolong    2\n  z\n");
        let headless = t.clone().without_header().render();
        assert_eq!(headless, "  xy   1.5\n  toolong    2\n  z\n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut t = Table::new([Column::left("x"), Column::left("y")]);
        t.row(["µs", "1"]).row(["ab", "2"]);
        assert_eq!(t.render(), "x   y\nµs  1\nab  2\n");
    }
}
