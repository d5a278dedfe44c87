//! Plain aligned text tables, as kubectl prints them.

/// Rows (the first is the header) with columns padded to their widest cell; the
/// last column is not padded.
pub(super) fn render(rows: &[Vec<String>]) -> String {
    let widths = widths(rows);
    rows.iter().map(|row| render_row(row, &widths)).collect()
}

/// The width of each column: its widest cell.
pub(super) fn widths(rows: &[Vec<String>]) -> Vec<usize> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..columns)
        .map(|c| rows.iter().filter_map(|row| row.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect()
}

/// One row padded to `widths`, as a row printed after the table (a followed
/// stream's) lines up with it; a wider cell pushes only its own row.
pub(super) fn render_row(row: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (c, cell) in row.iter().enumerate() {
        if c + 1 == row.len() {
            line.push_str(cell);
        } else {
            let width = widths.get(c).copied().unwrap_or(0);
            line.push_str(&format!("{cell:<width$}  "));
        }
    }
    let mut line = line.trim_end().to_owned();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_aligned_to_the_widest_cell() {
        let rows = vec![
            vec!["NAME".to_owned(), "READY".to_owned(), "MESSAGE".to_owned()],
            vec!["ollama".to_owned(), "True".to_owned(), "pid 12".to_owned()],
        ];
        assert_eq!(super::render(&rows), "NAME    READY  MESSAGE\nollama  True   pid 12\n");
    }

    #[test]
    fn a_later_row_lines_up_with_the_table_unless_a_cell_is_wider() {
        let widths = super::widths(&[vec!["NAME".to_owned(), "READY".to_owned(), "MESSAGE".to_owned()]]);
        let row = |cells: [&str; 3]| super::render_row(&cells.map(str::to_owned), &widths);
        assert_eq!(row(["db", "True", "ok"]), "db    True   ok\n");
        assert_eq!(row(["postgres", "True", "ok"]), "postgres  True   ok\n");
    }
}
