// Line plots drawn on the server as inline SVG: a value (a metadata key such as
// "loss", or a step's size) against the step. No script, no external resource, no
// inline style: colours come from app.css through class names, so the page's
// Content-Security-Policy holds.
#ifndef MGREG_SERVER_WEB_SVG_PLOT_H_
#define MGREG_SERVER_WEB_SVG_PLOT_H_

#include <cstdint>
#include <string>
#include <vector>

namespace mgreg::web {

struct PlotPoint {
  int64_t step = 0;
  double value = 0;
};

struct PlotOptions {
  // Shown above the plot and as the SVG's accessible title.
  std::string title;
  // Formats the y-axis labels as byte sizes.
  bool bytes = false;
  int width = 640;
  int height = 220;
  // Points drawn as markers (each with data-step, data-value and a tooltip) when the
  // series has at most this many; the line alone beyond that.
  int max_markers = 400;
};

// The SVG element for `points` (sorted by step ascending; at least one). Text is
// HTML-escaped. The <svg> carries class "plot" and data-points (the point count); the
// polyline class "series"; markers class "pt".
std::string RenderSvgPlot(const std::vector<PlotPoint>& points,
                          const PlotOptions& options);

// "0.25", "1e-05", "12345": a compact number for axis labels and tooltips.
std::string FormatNumber(double v);

}  // namespace mgreg::web

#endif  // MGREG_SERVER_WEB_SVG_PLOT_H_
