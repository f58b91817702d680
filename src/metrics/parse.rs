//! Reading the Prometheus text format back (`sluice broker-stats` reads the broker's endpoint
//! with it): the samples, each a name, its labels and a value. Comments (`# HELP`, `# TYPE`,
//! OpenMetrics' `# UNIT`, `# EOF`) and timestamps are skipped; what cannot be read is an error
//! naming the line.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' name (`sluice_requests_total`).
    pub name: String,
    /// Its labels, in the order written.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A line that is not a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}: {text}")]
pub struct ParseError {
    /// Its number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub why: &'static str,
    /// The line.
    pub text: String,
}

/// Every sample of an exposition, in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_line(line).map_err(|why| ParseError {
            line: index + 1,
            why,
            text: line.chars().take(200).collect(),
        })?;
        samples.push(sample);
    }
    Ok(samples)
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("no metric name");
    }
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| "the value is not a number")?,
    };
    // An optional timestamp, then nothing (OpenMetrics exemplars start with '#').
    match (fields.next(), fields.next()) {
        (None, _) | (Some(_), None) => {}
        (Some(_), Some(more)) if more.starts_with('#') => {}
        _ => return Err("text after the value"),
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

/// Reads `name="value",...}` into `labels`; returns what follows the closing brace.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, &'static str> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let (name, after) = rest.split_once('=').ok_or("a label without a value")?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("a bad label name");
        }
        let mut chars = after.strip_prefix('"').ok_or("a label value without quotes")?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("an unterminated label value")?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = after[1 + end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_labels_and_special_values_are_read_and_comments_skipped() {
        let text = "# HELP x_total Things.\n# TYPE x_total counter\nx_total{shard=\"0\",request=\"Produce\"} 12\n\
                    h_bucket{le=\"+Inf\"} 3 1700000000000\nplain 1.5e3\nesc{v=\"a\\\"b\\\\c\\nd\",} NaN\n# EOF\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "x_total");
        assert_eq!(samples[0].label("request"), Some("Produce"));
        assert_eq!(samples[0].value, 12.0);
        assert_eq!(samples[1].label("le"), Some("+Inf"));
        assert_eq!(samples[1].value, 3.0);
        assert_eq!(samples[2].value, 1500.0);
        assert_eq!(samples[3].label("v"), Some("a\"b\\c\nd"));
        assert!(samples[3].value.is_nan());
    }

    #[test]
    fn what_is_not_a_sample_is_an_error_naming_its_line() {
        for bad in ["{a=\"b\"} 1", "x{a=\"b} 1", "x{a=b} 1", "x", "x one", "x 1 2 3", "x{=\"\"} 1", "9x 1"] {
            let error = parse(&format!("ok 1\n{bad}\n")).unwrap_err();
            assert_eq!(error.line, 2, "{bad}: {error}");
        }
    }
}
