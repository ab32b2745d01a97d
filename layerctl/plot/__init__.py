"""Pictures: the model as a diagram (`layout`, `svg`), training curves and confusion matrices
(`charts`, `confusion`), and the HTML pages that hold them (`page`). Plain SVG and HTML text
written by layerctl: no graphviz, no plotting library, no script in the pages."""
