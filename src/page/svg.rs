//! Pictures drawn on the server as inline SVG (no script, no image request):
//! a Service's dependency graph, its revision timeline, and usage bars.
//! Colours come from the page's stylesheet through classes, so the SVG has no
//! `style` attribute and the Content-Security-Policy can forbid inline styles.

use maud::{Markup, html};

use super::{Health, version};
use crate::api::service::RevisionRecord;

/// A box in the dependency graph.
pub struct GraphNode<'a> {
    pub name: &'a str,
    pub health: Health,
    /// The node's page, when the Service exists.
    pub href: Option<String>,
}

const NODE_WIDTH: u32 = 170;
const NODE_HEIGHT: u32 = 30;
const ROW: u32 = 42;
const COLUMN: u32 = 240;

/// Who depends on the Service (left), the Service (middle), what it depends on
/// (right), with arrows in the direction of the calls.
pub fn dependency_graph(
    center: &GraphNode<'_>,
    dependents: &[GraphNode<'_>],
    dependencies: &[GraphNode<'_>],
) -> Markup {
    let rows = dependents.len().max(dependencies.len()).max(1) as u32;
    let height = rows * ROW + 10;
    let width = 2 * COLUMN + NODE_WIDTH + 20;
    let top = |index: usize, count: usize| -> u32 {
        // Centre each column vertically.
        let offset = (rows - count.max(1) as u32) * ROW / 2;
        5 + offset + index as u32 * ROW
    };
    let center_top = top(0, 1);
    let center_x = 10 + COLUMN;
    let middle = NODE_HEIGHT / 2;
    html! {
        svg.graph xmlns="http://www.w3.org/2000/svg" role="img" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } {
            title { "Dependencies of " (center.name) }
            defs {
                marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path.edge-head d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            @for (i, _) in dependents.iter().enumerate() {
                line.edge x1=(10 + NODE_WIDTH) y1=(top(i, dependents.len()) + middle)
                    x2=(center_x) y2=(center_top + middle) marker-end="url(#arrow)" {}
            }
            @for (i, _) in dependencies.iter().enumerate() {
                line.edge x1=(center_x + NODE_WIDTH) y1=(center_top + middle)
                    x2=(10 + 2 * COLUMN) y2=(top(i, dependencies.len()) + middle) marker-end="url(#arrow)" {}
            }
            @for (i, node) in dependents.iter().enumerate() {
                (graph_node(node, 10, top(i, dependents.len()), false))
            }
            (graph_node(center, center_x, center_top, true))
            @for (i, node) in dependencies.iter().enumerate() {
                (graph_node(node, 10 + 2 * COLUMN, top(i, dependencies.len()), false))
            }
        }
    }
}

fn graph_node(node: &GraphNode<'_>, x: u32, y: u32, center: bool) -> Markup {
    let shape = html! {
        rect class={ "node " (node.health.class()) @if center { " center" } @if node.href.is_none() { " missing" } }
            x=(x) y=(y) width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="5" {}
        text.label x=(x + 10) y=(y + 20) {
            (truncate(node.name, 20))
            @if node.href.is_none() { " (missing)" }
        }
        title { (node.name) ": " (node.health.label()) }
    };
    html! {
        @if let Some(href) = &node.href {
            @if !center { a href=(href) { (shape) } } @else { g { (shape) } }
        } @else {
            g { (shape) }
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}

/// The revisions of a Service, oldest left, the current one marked; each dot
/// labelled with its revision, image tag and date (`history` is newest first,
/// as status keeps it).
pub fn revision_timeline(history: &[RevisionRecord], current: i64) -> Markup {
    const STEP: u32 = 150;
    let count = history.len().max(1) as u32;
    let width = count * STEP + 40;
    let height = 96;
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" role="img" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } {
            title { "Revision history" }
            line.axis x1="20" y1="40" x2=(width - 20) y2="40" {}
            @for (i, record) in history.iter().rev().enumerate() {
                @let x = 20 + STEP / 2 + i as u32 * STEP;
                g.revision {
                    title { "revision " (record.revision) ": " (record.image) " (config " (record.config_hash) ")" }
                    circle class={ "dot" @if record.revision == current { " current" } } cx=(x) cy="40" r="8" {}
                    text.label x=(x) y="22" text-anchor="middle" { "r" (record.revision) }
                    text.tag x=(x) y="64" text-anchor="middle" { (truncate(version(&record.image), 22)) }
                    text.date x=(x) y="82" text-anchor="middle" { (short_date(&record.deployed_at)) }
                }
            }
        }
    }
}

/// `2026-11-23T10:00:00Z` → `2026-11-23 10:00`.
fn short_date(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => rfc3339.to_string(),
    }
}

/// One bar per resource: used against hard, with both figures as text.
pub struct UsageBar<'a> {
    pub resource: &'a str,
    pub used: &'a str,
    pub hard: &'a str,
    /// used / hard, when both are quantities.
    pub ratio: Option<f64>,
}

pub fn usage_bars(bars: &[UsageBar<'_>]) -> Markup {
    const BAR: u32 = 240;
    let height = bars.len() as u32 * 26 + 6;
    html! {
        svg.usage xmlns="http://www.w3.org/2000/svg" role="img" width="520" height=(height)
            viewBox={ "0 0 520 " (height) } {
            title { "Usage against quota" }
            @for (i, bar) in bars.iter().enumerate() {
                @let y = 4 + i as u32 * 26;
                @let ratio = bar.ratio.unwrap_or(0.0).clamp(0.0, 1.0);
                text.label x="0" y=(y + 15) { (bar.resource) }
                rect.track x="130" y=(y) width=(BAR) height="18" rx="3" {}
                rect class={ "fill" @if ratio >= 0.9 { " bad" } @else if ratio >= 0.7 { " busy" } @else { " ok" } }
                    x="130" y=(y) width=((ratio * BAR as f64).round() as u32) height="18" rx="3" {}
                text.label x=(140 + BAR) y=(y + 15) { (bar.used) " / " (bar.hard) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(revision: i64, image: &str) -> RevisionRecord {
        RevisionRecord {
            revision,
            image: image.into(),
            config_hash: "abc".into(),
            deployed_at: "2026-11-23T10:00:00Z".into(),
        }
    }

    #[test]
    fn the_timeline_runs_from_the_oldest_revision_to_the_current_one() {
        let history = [record(3, "acme/api:1.3"), record(2, "acme/api:1.2")];
        let svg = revision_timeline(&history, 3).into_string();
        let (r2, r3) = (svg.find(">r2<").unwrap(), svg.find(">r3<").unwrap());
        assert!(r2 < r3, "oldest first: {svg}");
        assert_eq!(svg.matches("dot current").count(), 1);
        assert!(svg.contains("2026-11-23 10:00"));
    }

    #[test]
    fn a_hostile_service_name_in_the_graph_is_text_not_markup() {
        let center = GraphNode {
            name: "</text><script>alert(1)</script>",
            health: Health::Ready,
            href: None,
        };
        let svg = dependency_graph(&center, &[], &[]).into_string();
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn a_missing_dependency_is_drawn_without_a_link() {
        let center = GraphNode {
            name: "api",
            health: Health::Ready,
            href: Some("/a".into()),
        };
        let deps = [
            GraphNode {
                name: "db",
                health: Health::Ready,
                href: Some("/db".into()),
            },
            GraphNode {
                name: "ghost",
                health: Health::Unknown,
                href: None,
            },
        ];
        let svg = dependency_graph(&center, &[], &deps).into_string();
        assert!(svg.contains(r#"href="/db""#));
        assert!(svg.contains("ghost (missing)"));
        assert_eq!(svg.matches("<line").count(), 2, "one arrow per dependency");
    }

    #[test]
    fn a_usage_bar_is_never_longer_than_its_track() {
        let bars = [UsageBar {
            resource: "pods",
            used: "12",
            hard: "10",
            ratio: Some(1.2),
        }];
        let svg = usage_bars(&bars).into_string();
        assert!(
            svg.contains(r#"width="240" height="18" rx="3"></rect><rect class="fill bad""#)
                || svg.contains("fill bad")
        );
        assert!(!svg.contains("width=\"288\""), "{svg}");
    }
}
