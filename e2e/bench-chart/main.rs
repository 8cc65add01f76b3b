//! `paved-bench-chart RESULT_JSON OUT_PNG [FONT_TTF]`: the chart of
//! `make bench-scale`. Left: Services done over time in the direct, floor and
//! Paved phases of the largest size. Right: the controller's peak and settled
//! resident memory against the number of Services.
//!
//! Text needs a TrueType font: FONT_TTF, or DejaVu Sans or Liberation Sans
//! where Debian puts them (packages fonts-dejavu-core, fonts-liberation).

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use serde_json::Value;

const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (input, output) = match (args.get(1), args.get(2)) {
        (Some(i), Some(o)) => (i.clone(), o.clone()),
        _ => return Err("usage: paved-bench-chart RESULT_JSON OUT_PNG [FONT_TTF]".into()),
    };
    let font = args
        .get(3)
        .cloned()
        .or_else(|| {
            FONTS
                .iter()
                .find(|f| std::path::Path::new(f).exists())
                .map(|f| f.to_string())
        })
        .ok_or("no TrueType font found: pass one, or install fonts-dejavu-core")?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(&font)?.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| "not a TrueType font")?;
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&input)?)?;
    let sizes = result["sizes"].as_array().ok_or("no sizes in the result")?;
    let largest = sizes
        .iter()
        .max_by_key(|s| s["services"].as_u64().unwrap_or(0))
        .ok_or("no size was measured")?;

    let root = BitMapBackend::new(&output, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(760);
    converged_over_time(&left, largest)?;
    memory_against_services(&right, sizes, &result["summary"])?;
    root.present()?;
    println!("chart: {output}");
    Ok(())
}

fn points(series: &Value) -> Vec<(f64, f64)> {
    series
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn converged_over_time<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    size: &Value,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let services = size["services"].as_f64().unwrap_or(0.0);
    let phases = [
        (
            "direct (children applied by a plain client)",
            "direct",
            RGBColor(120, 120, 120),
        ),
        (
            "floor (what Paved's design asks, no controller)",
            "floor",
            RGBColor(230, 150, 30),
        ),
        ("Paved", "paved", RGBColor(30, 100, 200)),
    ];
    let longest = phases
        .iter()
        .flat_map(|(_, key, _)| points(&size["progress"][*key]))
        .map(|(t, _)| t)
        .fold(1.0_f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{services:.0} Services: done over time, per phase"),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..longest * 1.05, 0.0..services * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first apply")
        .y_desc("Services done")
        .label_style(("sans-serif", 15))
        .draw()?;
    for (label, key, color) in phases {
        let mut line = points(&size["progress"][key]);
        if let Some(first) = line.first().copied()
            && first.0 > 0.0
        {
            line.insert(0, (0.0, 0.0));
        }
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(3)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn memory_against_services<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    sizes: &[Value],
    summary: &Value,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let figure = |key: &str| -> Vec<(f64, f64)> {
        let mut p: Vec<(f64, f64)> = sizes
            .iter()
            .filter_map(|s| Some((s["services"].as_f64()?, s["memory_mib"][key].as_f64()?)))
            .collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        p
    };
    let (peak, settled) = (figure("peak"), figure("settled"));
    let most = peak.iter().map(|p| p.0).fold(1.0_f64, f64::max);
    let highest = peak.iter().map(|p| p.1).fold(1.0_f64, f64::max);
    let slope = summary["peak_kib_per_service_slope"]
        .as_f64()
        .map_or(String::new(), |s| {
            format!(" (slope {s:.1} KiB per Service)")
        });
    let mut chart = ChartBuilder::on(area)
        .caption(format!("Controller memory{slope}"), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..most * 1.05, 0.0..highest * 1.2)?;
    chart
        .configure_mesh()
        .x_desc("Services")
        .y_desc("resident MiB")
        .label_style(("sans-serif", 15))
        .draw()?;
    for (label, line, color) in [
        ("peak (VmHWM)", peak, RGBColor(200, 40, 40)),
        (
            "settled, converged (VmRSS)",
            settled,
            RGBColor(30, 100, 200),
        ),
    ] {
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(3)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(
            line.into_iter()
                .map(move |p| Circle::new(p, 5, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
