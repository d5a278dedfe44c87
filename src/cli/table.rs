//! Plain aligned text tables, as kubectl prints them.

/// Rows (the first is the header) with columns padded to their widest cell; the
/// last column is not padded.
pub(super) fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|row| row.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
}
