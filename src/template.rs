//! `{{placeholder}}` templates in manifest values: Services' `command` and `env`
//! (`{{node.name}}`, `{{node.address}}`) and Capabilities' `clientEnv`
//! (`{{host}}`, `{{port}}`, `{{path}}`, `{{node}}`). The checker and the renderer
//! share this one parser.

/// A piece of a template: literal text or a placeholder's name (trimmed).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits `text` into pieces; Err when a `{{` is never closed.
pub(crate) fn parse(text: &str) -> Result<Vec<Piece<'_>>, Unclosed> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let close = rest[open..].find("}}").ok_or(Unclosed)?;
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        pieces.push(Piece::Placeholder(rest[open + 2..open + close].trim()));
        rest = &rest[open + close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unclosed;

/// Replaces each placeholder by its value in `values`. Templates are checked
/// before they are rendered, so an unknown placeholder here is left as written.
pub(crate) fn render(text: &str, values: &[(&str, &str)]) -> String {
    let Ok(pieces) = parse(text) else {
        return text.to_owned();
    };
    pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => text.to_owned(),
            Piece::Placeholder(name) => values
                .iter()
                .find(|(key, _)| *key == name)
                .map_or_else(|| format!("{{{{{name}}}}}"), |(_, value)| (*value).to_owned()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_trimmed() {
        assert_eq!(
            parse("a{{ x }}b{{y}}").unwrap(),
            [Piece::Text("a"), Piece::Placeholder("x"), Piece::Text("b"), Piece::Placeholder("y")]
        );
        assert_eq!(parse("no {{ end"), Err(Unclosed));
        assert_eq!(parse("").unwrap(), []);
    }

    #[test]
    fn render_substitutes_known_values_only() {
        let values = [("node.address", "100.64.0.5"), ("node.name", "mini")];
        assert_eq!(render("{{node.address}}:11434", &values), "100.64.0.5:11434");
        assert_eq!(render("{{ node.name }}-{{other}}", &values), "mini-{{other}}");
    }
}
