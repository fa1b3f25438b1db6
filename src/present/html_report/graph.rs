//! The step graph as SVG: layout-rs places the nodes (ranks, crossing reduction, edge routes
//! through long edges); this module only draws what it placed, with the classes the page's
//! stylesheet colours by status.

use super::markup::esc;
use layout::core::base::Orientation;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;

/// A node to draw: its step, the CSS class of its status, the second line of its label.
pub struct Node {
    pub name: String,
    pub class: String,
    pub detail: String,
    /// Marked as on the critical path.
    pub critical: bool,
}

/// Width of a label character in the SVG's font (13 px sans-serif, generous).
const CHAR_W: f64 = 7.6;
const NODE_H: f64 = 44.0;

/// A bezier path as layout-rs gives it: the exit vector of the first point, then the entry
/// vectors of the next ones.
type Route = Vec<(Point, Point)>;

/// Records where layout-rs put the nodes and routed the edges.
#[derive(Default)]
struct Capture {
    /// Node index → (top-left, size).
    nodes: Vec<Option<(Point, Point)>>,
    /// (from, to, route).
    edges: Vec<(usize, usize, Route)>,
}

impl RenderBackend for Capture {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        if let Some(i) = properties.and_then(|p| p.parse::<usize>().ok()) {
            if i < self.nodes.len() {
                self.nodes[i] = Some((xy, size));
            }
        }
    }
    fn draw_line(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}
    fn draw_circle(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}
    fn draw_text(&mut self, _: Point, _: &str, _: &StyleAttr) {}
    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        _dashed: bool,
        _head: (bool, bool),
        _look: &StyleAttr,
        properties: Option<String>,
        _text: &str,
    ) {
        let Some(p) = properties else { return };
        let mut it = p.split(',').filter_map(|x| x.parse::<usize>().ok());
        if let (Some(a), Some(b)) = (it.next(), it.next()) {
            self.edges.push((a, b, path.to_vec()));
        }
    }
    fn create_clip(&mut self, _: Point, _: Point, _: usize) -> ClipHandle {
        0
    }
}

/// The graph of `nodes` with `edges` (from, to: indices into `nodes`; `critical` marks an
/// edge of the critical path) as an `<svg>` element. `None` when the layout fails.
pub fn svg(nodes: &[Node], edges: &[(usize, usize, bool)]) -> Option<String> {
    if nodes.is_empty() {
        return None;
    }
    let capture = layout(nodes, edges)?;
    let (min, max) = extent(&capture)?;
    let pad = 12.0;
    let (ox, oy) = (min.x - pad, min.y - pad);
    let (w, h) = (max.x - min.x + 2.0 * pad, max.y - min.y + 2.0 * pad);
    let mut out = format!(
        "<svg class=\"graph\" role=\"img\" aria-label=\"step graph\" viewBox=\"{} {} {} {}\" width=\"{}\" height=\"{}\">\n",
        f(ox), f(oy), f(w), f(h), f(w), f(h)
    );
    out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"9\" markerHeight=\"9\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" class=\"arrowhead\"/></marker></defs>\n");
    for (a, b, path) in &capture.edges {
        if path.len() < 2 {
            continue;
        }
        let critical = edges.iter().any(|&(x, y, c)| x == *a && y == *b && c);
        out.push_str(&edge(&nodes[*a], &nodes[*b], path, critical));
    }
    for (i, n) in nodes.iter().enumerate() {
        let Some((xy, size)) = capture.nodes[i] else {
            continue;
        };
        out.push_str(&node(n, xy, size));
    }
    out.push_str("</svg>");
    Some(out)
}

/// Where layout-rs places `nodes` and routes `edges`; `None` when it fails.
fn layout(nodes: &[Node], edges: &[(usize, usize, bool)]) -> Option<Capture> {
    std::panic::catch_unwind(|| {
        let mut vg = VisualGraph::new(Orientation::TopToBottom);
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let chars = n.name.chars().count().max(n.detail.chars().count()) as f64;
                let size = Point::new((chars * CHAR_W + 28.0).max(110.0), NODE_H);
                let shape = ShapeKind::new_box(&format!("{}\n{}", n.name, n.detail));
                vg.add_node(Element::create_with_properties(
                    shape,
                    StyleAttr::simple(),
                    Orientation::TopToBottom,
                    size,
                    i.to_string(),
                ))
            })
            .collect();
        for &(a, b, _) in edges {
            if a < handles.len() && b < handles.len() && a != b {
                vg.add_edge(
                    Arrow::simple_with_properties("", format!("{a},{b}")),
                    handles[a],
                    handles[b],
                );
            }
        }
        let mut cap = Capture {
            nodes: vec![None; nodes.len()],
            edges: Vec::new(),
        };
        vg.do_it(false, false, false, &mut cap);
        cap
    })
    .ok()
}

/// The drawing's extent (top-left, bottom-right); `None` when a node was not placed.
fn extent(capture: &Capture) -> Option<(Point, Point)> {
    let mut max = Point::new(0.0, 0.0);
    let mut min = Point::new(f64::MAX, f64::MAX);
    let mut grow = |p: Point| {
        max.x = max.x.max(p.x);
        max.y = max.y.max(p.y);
        min.x = min.x.min(p.x);
        min.y = min.y.min(p.y);
    };
    for (xy, size) in capture.nodes.iter().flatten() {
        grow(*xy);
        grow(xy.add(*size));
    }
    for (_, _, path) in &capture.edges {
        for (a, b) in path {
            grow(*a);
            grow(*b);
        }
    }
    if capture.nodes.iter().any(Option::is_none) || min.x > max.x {
        return None;
    }
    Some((min, max))
}

/// The edge from node `a` to node `b` along `path` (at least two points).
fn edge(a: &Node, b: &Node, path: &Route, critical: bool) -> String {
    let mut d = format!(
        "M {} {} C {} {}, {} {}, {} {}",
        f(path[0].0.x),
        f(path[0].0.y),
        f(path[0].1.x),
        f(path[0].1.y),
        f(path[1].0.x),
        f(path[1].0.y),
        f(path[1].1.x),
        f(path[1].1.y)
    );
    for p in path.iter().skip(2) {
        d.push_str(&format!(
            " S {} {}, {} {}",
            f(p.0.x),
            f(p.0.y),
            f(p.1.x),
            f(p.1.y)
        ));
    }
    format!(
        "<path class=\"edge{}\" data-from=\"{}\" data-to=\"{}\" d=\"{d}\" marker-end=\"url(#arrow)\"><title>{} needs {}</title></path>\n",
        if critical { " crit" } else { "" },
        esc(&a.name),
        esc(&b.name),
        esc(&b.name),
        esc(&a.name),
    )
}

/// Node `n`, placed at `xy` with `size`: a link to its step's details.
fn node(n: &Node, xy: Point, size: Point) -> String {
    let cx = xy.x + size.x / 2.0;
    format!(
        "<a href=\"#step-{id}\"><g class=\"node {class}{crit}\" data-step=\"{name}\"><title>{name}: {detail}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\"/><text x=\"{}\" y=\"{}\" class=\"name\">{name}</text><text x=\"{}\" y=\"{}\" class=\"detail\">{detail}</text></g></a>\n",
        f(xy.x),
        f(xy.y),
        f(size.x),
        f(size.y),
        f(cx),
        f(xy.y + 18.0),
        f(cx),
        f(xy.y + 35.0),
        id = esc(&n.name),
        class = esc(&n.class),
        crit = if n.critical { " crit" } else { "" },
        name = esc(&n.name),
        detail = esc(&n.detail),
    )
}

/// A coordinate with one decimal.
fn f(x: f64) -> String {
    format!("{:.1}", x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        Node {
            name: name.into(),
            class: "st-ran".into(),
            detail: "ran 1.0s".into(),
            critical: false,
        }
    }

    #[test]
    fn every_node_and_edge_is_placed_and_ranks_go_down() {
        let nodes: Vec<Node> = ["a", "b", "c", "d"].iter().map(|n| node(n)).collect();
        // a -> b, a -> c, b -> d, c -> d, and a long edge a -> d
        let edges = [
            (0, 1, true),
            (0, 2, false),
            (1, 3, true),
            (2, 3, false),
            (0, 3, false),
        ];
        let svg = svg(&nodes, &edges).expect("laid out");
        assert_eq!(svg.matches("<g class=\"node").count(), 4);
        assert_eq!(svg.matches("<path class=\"edge").count(), 5);
        assert_eq!(svg.matches("class=\"edge crit\"").count(), 2);
        // a is above d
        let y = |name: &str| -> f64 {
            let at = svg.find(&format!("data-step=\"{name}\"")).unwrap();
            let rest = &svg[at..];
            let y = rest.find(" y=\"").unwrap() + 4;
            rest[y..y + rest[y..].find('"').unwrap()].parse().unwrap()
        };
        assert!(y("a") < y("b") && y("b") < y("d"), "{svg}");
    }
}
