//! `example:calc/geometry`, free of the ABI.

/// `record point`: two f64s, which is also its canonical ABI layout (16 bytes, align 8), so a
/// `list<point>` the host writes is a `[Point]` as is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

pub enum Shape {
    Circle(f64),
    Rect(Point, Point),
    Empty,
}

#[derive(Clone, Copy)]
pub enum Unit {
    Metric,
    Imperial,
}

/// `flags style` as its canonical bits, in WIT order.
pub const BOLD: u8 = 1 << 0;
pub const ITALIC: u8 = 1 << 1;
pub const UNDERLINE: u8 = 1 << 2;

pub fn area(s: &Shape) -> f64 {
    match s {
        Shape::Circle(r) => std::f64::consts::PI * r * r,
        // Any two opposite corners, in either order.
        Shape::Rect(a, b) => (b.x - a.x).abs() * (b.y - a.y).abs(),
        Shape::Empty => 0.0,
    }
}

pub fn centroid(points: &[Point]) -> Option<Point> {
    if points.is_empty() {
        return None;
    }
    let n = points.len() as f64;
    let (x, y) = points.iter().fold((0.0, 0.0), |(x, y), p| (x + p.x, y + p.y));
    Some(Point { x: x / n, y: y / n })
}

pub fn describe_style(style: u8, unit: Unit) -> String {
    let names: Vec<&str> = [(BOLD, "bold"), (ITALIC, "italic"), (UNDERLINE, "underline")]
        .iter()
        .filter(|(bit, _)| style & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    let text = if names.is_empty() { "plain".to_string() } else { names.join("+") };
    let unit = match unit {
        Unit::Metric => "metric",
        Unit::Imperial => "imperial",
    };
    format!("{} ({})", text, unit)
}
