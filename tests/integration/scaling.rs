//! Validation time grows linearly with the number of documents, whatever their
//! shape (issue #13, point 6): ten times the documents take about ten times the
//! time, never the hundred times a quadratic step would, in a debug build. The
//! bound leaves room for a machine busy with other builds (a loaded run measured
//! 16×); the release bench (`benches/validate.rs`) prints the figures.

use std::time::{Duration, Instant};

use agentmesh::manifest::{SourceFile, validate};

use crate::support::shapes::SHAPES;

/// Documents in the small set; the large one holds ten times as many.
const SMALL: usize = 100;
/// Linear is 10×, quadratic 100×; the rest is room for a busy machine.
const MAX_RATIO: f64 = 25.0;

/// The fastest of five validations of `files`: the least disturbed by whatever
/// else the machine is doing.
fn fastest(files: &[SourceFile]) -> Duration {
    (0..5)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(validate(files, Vec::new()));
            started.elapsed()
        })
        .min()
        .expect("five runs")
}

#[test]
fn ten_times_the_documents_take_about_ten_times_the_time_not_a_hundred() {
    let mut report = Vec::new();
    for shape in &SHAPES {
        let (small, large) = ((shape.files)(SMALL), (shape.files)(10 * SMALL));
        let (small_time, large_time) = (fastest(&small), fastest(&large));
        let ratio = large_time.as_secs_f64() / small_time.as_secs_f64();
        report.push(format!(
            "{}: {SMALL} in {small_time:.1?}, {} in {large_time:.1?}: {ratio:.1}×",
            shape.name,
            10 * SMALL
        ));
        // A second look before failing: one slow moment is not a trend.
        let ratio =
            if ratio > MAX_RATIO { fastest(&large).as_secs_f64() / fastest(&small).as_secs_f64() } else { ratio };
        assert!(
            ratio <= MAX_RATIO,
            "{}: 10× the documents took {ratio:.1}× the time\n{}",
            shape.name,
            report.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn ten_thousand_duplicates_get_one_diagnostic_each_naming_the_first() {
    let validation = validate(&crate::support::shapes::duplicated(10_000), Vec::new());
    assert_eq!(validation.set.len(), 1);
    assert_eq!(validation.diagnostics.len(), 9_999);
    assert!(
        validation
            .diagnostics
            .iter()
            .all(|d| d.message == "Node/home is declared twice; first at manifests/nodes.yaml:4:9"),
        "{}",
        validation.diagnostics[0]
    );
}

#[test]
fn the_distinct_valid_shape_is_valid() {
    let validation = validate(&crate::support::shapes::distinct_valid(1_000), Vec::new());
    assert_eq!(validation.set.len(), 1_000);
    assert!(validation.is_valid(), "{}", validation.diagnostics.iter().find(|d| d.is_error()).expect("an error"));
}
