//! The concept vocabulary: Broden's 11 colour names, the shape classes, their parts and
//! the textures, with their global label numbers (0 is "-", unlabeled, as in Broden).

/// Broden's colour names and the sRGB each is painted with.
pub const COLORS: &[(&str, [u8; 3])] = &[
    ("black", [22, 22, 22]),
    ("blue", [40, 70, 205]),
    ("brown", [120, 72, 30]),
    ("green", [40, 160, 55]),
    ("grey", [128, 128, 128]),
    ("orange", [245, 140, 25]),
    ("pink", [245, 155, 195]),
    ("purple", [130, 50, 165]),
    ("red", [212, 30, 30]),
    ("white", [238, 238, 238]),
    ("yellow", [240, 222, 40]),
];

/// Shape classes: the `object` category and the classifier's classes, in this order.
pub const SHAPES: &[&str] = &[
    "circle", "triangle", "square", "star", "cross", "ring", "arrow", "crescent",
];

/// Parts of shapes that have them.
pub const PARTS: &[&str] = &["star-tip", "cross-arm", "arrow-head", "arrow-shaft"];

/// Surface textures (names from the Describable Textures Dataset, as in Broden).
pub const TEXTURES: &[&str] = &[
    "striped",
    "dotted",
    "chequered",
    "zigzagged",
    "grid",
    "wavy",
];

/// Broden's categories in index.csv column order that this dataset fills.
pub const CATEGORIES: &[&str] = &["color", "object", "part", "texture"];

pub fn color_label(i: usize) -> u32 {
    1 + i as u32
}
pub fn shape_label(i: usize) -> u32 {
    1 + (COLORS.len() + i) as u32
}
pub fn part_label(i: usize) -> u32 {
    1 + (COLORS.len() + SHAPES.len() + i) as u32
}
pub fn texture_label(i: usize) -> u32 {
    1 + (COLORS.len() + SHAPES.len() + PARTS.len() + i) as u32
}

/// Every label: (number, name, category).
pub fn all_labels() -> Vec<(u32, &'static str, &'static str)> {
    let mut v = vec![(0, "-", "")];
    v.extend(
        COLORS
            .iter()
            .enumerate()
            .map(|(i, c)| (color_label(i), c.0, "color")),
    );
    v.extend(
        SHAPES
            .iter()
            .enumerate()
            .map(|(i, s)| (shape_label(i), *s, "object")),
    );
    v.extend(
        PARTS
            .iter()
            .enumerate()
            .map(|(i, s)| (part_label(i), *s, "part")),
    );
    v.extend(
        TEXTURES
            .iter()
            .enumerate()
            .map(|(i, s)| (texture_label(i), *s, "texture")),
    );
    v
}
