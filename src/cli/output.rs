//! How the read verbs print data with `-o json|yaml`: one serde value, the
//! same data in either format, so a script may read whichever it likes.

use serde::Serialize;

use super::Output;

/// Prints `value` as `output` asks, or the text `text` renders.
pub(super) fn print<T: Serialize>(output: Output, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    match output {
        Output::Text => print!("{}", text()),
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(value)?),
    }
    Ok(())
}

/// One item of a stream (`events`, `status -w`): a JSON value on one line, or
/// a YAML document that starts with `---`, so a reader splits the stream
/// into its items. None for text, which each verb prints its own way.
pub(super) fn stream_item<T: Serialize>(output: Output, value: &T) -> anyhow::Result<Option<String>> {
    Ok(match output {
        Output::Text => None,
        Output::Json => Some(format!("{}\n", serde_json::to_string(value)?)),
        Output::Yaml => Some(format!("---\n{}", serde_saphyr::to_string(value)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_reads_back_as_the_items_it_was_made_of() {
        let items = [serde_json::json!({"type": "event", "reason": "Applied"}), serde_json::json!({"type": "live"})];
        let render = |output| items.iter().map(|item| stream_item(output, item).unwrap().unwrap()).collect::<String>();
        let json: Vec<serde_json::Value> =
            render(Output::Json).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let yaml: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&render(Output::Yaml)).unwrap();
        assert_eq!(json, items);
        assert_eq!(yaml, items);
        assert_eq!(stream_item(Output::Text, &items[0]).unwrap(), None);
    }
}
