"""The product's version, as units and centers report it."""

VERSION = "0.1.0"
