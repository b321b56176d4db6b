#include "server/web/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/web/web_util.h"

namespace mgreg::web {
namespace {

constexpr int kLeft = 72;
constexpr int kRight = 16;
constexpr int kTop = 12;
constexpr int kBottom = 36;

std::string Coord(double v) { return absl::StrFormat("%.1f", v); }

}  // namespace

std::string FormatNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string RenderSvgPlot(const std::vector<PlotPoint>& points,
                          const PlotOptions& options) {
  const int w = options.width;
  const int h = options.height;
  const double plot_w = w - kLeft - kRight;
  const double plot_h = h - kTop - kBottom;
  int64_t min_step = points.front().step;
  int64_t max_step = points.back().step;
  double lo = points.front().value;
  double hi = lo;
  for (const PlotPoint& p : points) {
    lo = std::min(lo, p.value);
    hi = std::max(hi, p.value);
  }
  if (hi == lo) {
    // A flat series sits in the middle of a band around its value.
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double step_span = max_step == min_step ? 1.0 : double(max_step - min_step);
  auto x_of = [&](int64_t step) {
    return max_step == min_step ? kLeft + plot_w / 2
                                : kLeft + plot_w * double(step - min_step) / step_span;
  };
  auto y_of = [&](double v) { return kTop + plot_h * (1 - (v - lo) / (hi - lo)); };
  auto label = [&](double v) {
    return options.bytes ? FormatBytes(static_cast<int64_t>(v)) : FormatNumber(v);
  };

  const std::string title = HtmlEscape(options.title);
  std::string out = absl::StrCat(
      "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"", w,
      "\" height=\"", h, "\" viewBox=\"0 0 ", w, " ", h, "\" role=\"img\" data-title=\"",
      title, "\" data-points=\"", points.size(), "\"><title>", title, "</title>");
  // Axes, with the extremes labelled.
  absl::StrAppend(&out, "<path class=\"axis\" d=\"M", kLeft, " ", kTop, " V", h - kBottom,
                  " H", w - kRight, "\"/>");
  absl::StrAppend(&out, "<text class=\"tick\" x=\"", kLeft - 6, "\" y=\"", kTop + 10,
                  "\" text-anchor=\"end\">", HtmlEscape(label(hi)), "</text>");
  absl::StrAppend(&out, "<text class=\"tick\" x=\"", kLeft - 6, "\" y=\"", h - kBottom,
                  "\" text-anchor=\"end\">", HtmlEscape(label(lo)), "</text>");
  absl::StrAppend(&out, "<text class=\"tick\" x=\"", kLeft, "\" y=\"", h - kBottom + 16,
                  "\" text-anchor=\"start\">", min_step, "</text>");
  absl::StrAppend(&out, "<text class=\"tick\" x=\"", w - kRight, "\" y=\"",
                  h - kBottom + 16, "\" text-anchor=\"end\">", max_step, "</text>");
  absl::StrAppend(&out, "<text class=\"tick\" x=\"", kLeft + plot_w / 2, "\" y=\"", h - 4,
                  "\" text-anchor=\"middle\">step</text>");

  std::string line;
  line.reserve(points.size() * 14);
  for (const PlotPoint& p : points) {
    absl::StrAppend(&line, line.empty() ? "" : " ", Coord(x_of(p.step)), ",",
                    Coord(y_of(p.value)));
  }
  absl::StrAppend(&out, "<polyline class=\"series\" fill=\"none\" points=\"", line,
                  "\"/>");
  if (static_cast<int>(points.size()) <= options.max_markers) {
    for (const PlotPoint& p : points) {
      const std::string value = options.bytes
                                    ? absl::StrCat(static_cast<int64_t>(p.value))
                                    : FormatNumber(p.value);
      absl::StrAppend(&out, "<circle class=\"pt\" r=\"3\" cx=\"", Coord(x_of(p.step)),
                      "\" cy=\"", Coord(y_of(p.value)), "\" data-step=\"", p.step,
                      "\" data-value=\"", value, "\"><title>step ", p.step, ": ",
                      HtmlEscape(label(p.value)), "</title></circle>");
    }
  }
  out += "</svg>";
  return out;
}

}  // namespace mgreg::web
