//! Charts of a run (SVG and PNG).
