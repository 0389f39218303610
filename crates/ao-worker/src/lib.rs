//! The Claude Code worker (issue 3): placeholder until implemented.
