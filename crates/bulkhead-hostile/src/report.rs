//! One line per attempt: `NAME<TAB>blocked|ESCAPED<TAB>DETAIL`, printed inside the container and parsed
//! by the suite on the host.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Blocked,
    Escaped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub attempt: String,
    pub outcome: Outcome,
    pub detail: String,
}

impl Row {
    pub fn blocked(attempt: &str, detail: impl Into<String>) -> Row {
        Row::new(attempt, Outcome::Blocked, detail)
    }

    pub fn escaped(attempt: &str, detail: impl Into<String>) -> Row {
        Row::new(attempt, Outcome::Escaped, detail)
    }

    fn new(attempt: &str, outcome: Outcome, detail: impl Into<String>) -> Row {
        // Tabs and newlines separate fields and rows.
        let detail = detail.into().replace(['\t', '\n'], " ");
        Row {
            attempt: attempt.to_string(),
            outcome,
            detail,
        }
    }

    /// Parses a line the probe printed; `None` for anything else the container wrote.
    pub fn parse(line: &str) -> Option<Row> {
        let mut fields = line.splitn(3, '\t');
        let attempt = fields.next()?;
        let outcome = match fields.next()? {
            "blocked" => Outcome::Blocked,
            "ESCAPED" => Outcome::Escaped,
            _ => return None,
        };
        Some(Row::new(
            attempt,
            outcome,
            fields.next().unwrap_or_default(),
        ))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Blocked => "blocked",
            Outcome::Escaped => "ESCAPED",
        })
    }
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\t{}\t{}", self.attempt, self.outcome, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_survives_its_line() {
        let row = Row::escaped("mount", "succeeded\twith\na tab");
        let parsed = Row::parse(&row.to_string()).unwrap();
        assert_eq!(parsed, row);
        assert_eq!(parsed.detail, "succeeded with a tab");
        assert_eq!(Row::parse("mount\tmaybe\tx"), None);
        assert_eq!(Row::parse("some other output"), None);
    }
}
