import Foundation

/// What the review report shows: the images with their masks' scores, the failures, the timings.
public struct ReviewData: Sendable {
  public struct Mask: Sendable {
    public var category: String
    /// Predicted IoU.
    public var score: Double
    public var stability: Double?
    /// IoU with the ground truth, where `sambatch eval` computed one.
    public var gtIoU: Double?

    public init(category: String, score: Double, stability: Double?, gtIoU: Double?) {
      self.category = category
      self.score = score
      self.stability = stability
      self.gtIoU = gtIoU
    }
  }

  public struct Image: Sendable {
    /// The image's path as in the job.
    public var path: String
    /// The overlay file, relative to the report's folder.
    public var overlay: String
    public var masks: [Mask]

    public init(path: String, overlay: String, masks: [Mask]) {
      self.path = path
      self.overlay = overlay
      self.masks = masks
    }

    /// The lowest predicted IoU, stability or ground-truth IoU of its masks; nil without masks.
    public var worst: Double? {
      masks.flatMap { [$0.score, $0.stability, $0.gtIoU].compactMap { $0 } }.min()
    }
  }

  public struct Failure: Sendable {
    /// "image", "prompt" or "manifest".
    public var kind: String
    /// The image path, the image and prompt, or the manifest file and line.
    public var place: String
    public var reason: String

    public init(kind: String, place: String, reason: String) {
      self.kind = kind
      self.place = place
      self.reason = reason
    }
  }

  public var title: String
  public var images: [Image]
  public var failures: [Failure]
  /// Total milliseconds per stage over the done images, in pipeline order (read, embed, ...).
  public var stageMilliseconds: [(stage: String, milliseconds: Double)]

  public init(
    title: String, images: [Image], failures: [Failure],
    stageMilliseconds: [(stage: String, milliseconds: Double)]
  ) {
    self.title = title
    self.images = images
    self.failures = failures
    self.stageMilliseconds = stageMilliseconds
  }
}

/// The static HTML review report: one self-contained file (inline CSS, script and SVG charts; the
/// overlays are files beside it) that opens from disk, with no server and no network.
///
/// Images come worst first (the lowest predicted IoU, stability or ground-truth IoU among their
/// masks; images without masks last), can be filtered by category and by a score range (an image
/// stays when one of its masks of the chosen category has a predicted IoU in the range; the
/// address can set the filters: `index.html#category=car&low=0&high=0.7`), and open their full
/// overlay on a click.
public enum ReviewReport {
  public static func html(_ data: ReviewData) -> String {
    let sorted = data.images.enumerated().sorted { a, b in
      switch (a.element.worst, b.element.worst) {
      case (let x?, let y?): return x != y ? x < y : a.offset < b.offset
      case (.some, nil): return true
      case (nil, .some): return false
      case (nil, nil): return a.offset < b.offset
      }
    }.map(\.element)
    let categories = Array(Set(data.images.flatMap { $0.masks.map(\.category) })).sorted()
    var html = """
      <!DOCTYPE html>
      <html lang="en">
      <head>
      <meta charset="utf-8">
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <title>\(escape(data.title))</title>
      <style>
      body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
      h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }
      .charts { display: flex; flex-wrap: wrap; gap: 16px; }
      .chart { background: #fff; border: 1px solid #ddd; padding: 8px; }
      .chart h3 { font-size: 13px; margin: 0 0 4px; }
      .controls { position: sticky; top: 0; background: #fafafa; padding: 8px 0; border-bottom: 1px solid #ddd; }
      .controls label { margin-right: 12px; }
      .grid { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 12px; }
      .item { width: 260px; background: #fff; border: 1px solid #ddd; padding: 6px; }
      .item img { width: 100%; height: auto; display: block; cursor: zoom-in; }
      .item .path { font-weight: 600; word-break: break-all; }
      .item table { width: 100%; font-size: 12px; border-collapse: collapse; }
      .item td { padding: 1px 4px; }
      .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
      .low { color: #b00; font-weight: 600; }
      .none { color: #777; font-style: italic; }
      table.failures { border-collapse: collapse; background: #fff; }
      table.failures td, table.failures th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
      </style>
      </head>
      <body>
      <h1>\(escape(data.title))</h1>
      <p>\(data.images.count) images, \(data.images.reduce(0) { $0 + $1.masks.count }) masks, \(data.failures.count) failures.</p>

      """
    html += "<div class=\"charts\">\n"
    html += chart("Masks per category", barChart(categoryCounts(data)))
    html += chart(
      "Predicted IoU", barChart(histogram(data.images.flatMap { $0.masks.map(\.score) }), vertical: true))
    html += chart(
      "Stability score",
      barChart(histogram(data.images.flatMap { $0.masks.compactMap(\.stability) }), vertical: true))
    let gt = data.images.flatMap { $0.masks.compactMap(\.gtIoU) }
    if !gt.isEmpty { html += chart("Ground-truth IoU", barChart(histogram(gt), vertical: true)) }
    html += chart(
      "Time per stage (s, all images)",
      barChart(data.stageMilliseconds.map { ($0.stage, $0.milliseconds / 1000) }, decimals: 1))
    html += "</div>\n"

    html += """
      <h2>Images, worst first</h2>
      <div class="controls">
      <label>Category <select id="category"><option value="">all</option>
      """
    for c in categories { html += "<option value=\"\(escape(c))\">\(escape(c))</option>" }
    html += """
      </select></label>
      <label>Predicted IoU from <input id="low" type="number" min="0" max="1" step="0.05" value="0"></label>
      <label>to <input id="high" type="number" min="0" max="1" step="0.05" value="1"></label>
      <span id="shown"></span>
      </div>
      <div class="grid" id="grid">

      """
    for image in sorted {
      let cats = "[" + image.masks.map { JSONWriter.string($0.category) }.joined(separator: ",") + "]"
      let scores = image.masks.map { String($0.score) }.joined(separator: " ")
      html += "<div class=\"item\" data-categories=\"\(escape(cats))\" data-scores=\"\(scores)\">"
      html += "<a href=\"\(escape(image.overlay))\" target=\"_blank\"><img src=\"\(escape(image.overlay))\" "
      html += "loading=\"lazy\" alt=\"\(escape(image.path))\"></a>"
      html += "<div class=\"path\">\(escape(image.path))</div>"
      if image.masks.isEmpty {
        html += "<div class=\"none\">no masks (no detections)</div>"
      } else {
        html += "<table><tr><td></td><td>IoU</td><td>stab.</td><td>GT IoU</td></tr>"
        for mask in image.masks {
          html +=
            "<tr><td><span class=\"swatch\" style=\"background:\(OverlayRenderer.cssColor(for: mask.category))\">"
          html += "</span>\(escape(mask.category))</td>"
          html +=
            "<td\(low(mask.score))>\(format(mask.score))</td><td\(low(mask.stability))>\(format(mask.stability))</td>"
          html += "<td\(low(mask.gtIoU))>\(format(mask.gtIoU))</td></tr>"
        }
        html += "</table>"
      }
      html += "</div>\n"
    }
    html += "</div>\n<h2>Failures</h2>\n"
    if data.failures.isEmpty {
      html += "<p>None.</p>\n"
    } else {
      html += "<table class=\"failures\"><tr><th>kind</th><th>where</th><th>reason</th></tr>\n"
      for f in data.failures {
        html += "<tr><td>\(escape(f.kind))</td><td>\(escape(f.place))</td><td>\(escape(f.reason))</td></tr>\n"
      }
      html += "</table>\n"
    }
    html += """
      <script>
      "use strict";
      (function () {
        var items = Array.prototype.slice.call(document.querySelectorAll("#grid .item"));
        var category = document.getElementById("category");
        var low = document.getElementById("low");
        var high = document.getElementById("high");
        var shown = document.getElementById("shown");
        function update() {
          var c = category.value, lo = parseFloat(low.value), hi = parseFloat(high.value), n = 0;
          if (isNaN(lo)) lo = 0;
          if (isNaN(hi)) hi = 1;
          items.forEach(function (item) {
            var cats = JSON.parse(item.dataset.categories || "[]");
            var scores = item.dataset.scores ? item.dataset.scores.split(" ").map(Number) : [];
            var keep;
            if (cats.length === 0) {
              keep = c === "" && lo <= 0;
            } else {
              keep = cats.some(function (cat, i) {
                return (c === "" || cat === c) && scores[i] >= lo && scores[i] <= hi;
              });
            }
            item.style.display = keep ? "" : "none";
            if (keep) n += 1;
          });
          shown.textContent = n + " of " + items.length + " images shown";
          shown.setAttribute("data-count", String(n));
        }
        // Filters can be given in the address: index.html#category=car&low=0&high=0.7
        var given = new URLSearchParams(location.hash.slice(1));
        if (given.has("category")) category.value = given.get("category");
        if (given.has("low")) low.value = given.get("low");
        if (given.has("high")) high.value = given.get("high");
        category.addEventListener("change", update);
        low.addEventListener("input", update);
        high.addEventListener("input", update);
        update();
      })();
      </script>
      </body>
      </html>

      """
    return html
  }

  /// Writes `index.html` into `directory` (which holds, or will hold, the overlays).
  @discardableResult
  public static func write(_ data: ReviewData, to directory: URL) throws -> URL {
    let url = directory.appendingPathComponent("index.html")
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      try Data(html(data).utf8).write(to: url)
    } catch {
      throw LabelingError.file(path: url.path, reason: "cannot write the report: \(readableCause(error))")
    }
    return url
  }

  // MARK: - Pieces

  static func categoryCounts(_ data: ReviewData) -> [(String, Double)] {
    var counts: [String: Int] = [:]
    for image in data.images { for mask in image.masks { counts[mask.category, default: 0] += 1 } }
    return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map {
      ($0.key, Double($0.value))
    }
  }

  /// Ten bins over 0-1 (the last one includes 1).
  static func histogram(_ values: [Double]) -> [(String, Double)] {
    var bins = [Double](repeating: 0, count: 10)
    for v in values where v.isFinite { bins[min(9, max(0, Int(v * 10)))] += 1 }
    return (0..<10).map { (String(format: "%.1f", Double($0) / 10), bins[$0]) }
  }

  private static func chart(_ title: String, _ svg: String) -> String {
    "<div class=\"chart\"><h3>\(escape(title))</h3>\(svg)</div>\n"
  }

  /// A bar chart as inline SVG: horizontal bars with labels, or vertical bars (histograms).
  static func barChart(_ bars: [(String, Double)], vertical: Bool = false, decimals: Int = 0) -> String {
    guard !bars.isEmpty else { return "<p class=\"none\">no data</p>" }
    let largest = max(bars.map(\.1).max() ?? 0, 1e-9)
    func value(_ v: Double) -> String { String(format: "%.\(decimals)f", v) }
    if vertical {
      let width = 300
      let height = 150
      let barWidth = Double(width) / Double(bars.count)
      var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height + 30)\">"
      for (i, bar) in bars.enumerated() {
        let h = Double(height - 14) * bar.1 / largest
        let x = Double(i) * barWidth
        svg += "<rect x=\"\(f1(x + 1))\" y=\"\(f1(Double(height) - h))\" width=\"\(f1(barWidth - 2))\" "
        svg += "height=\"\(f1(h))\" fill=\"#4e79a7\"><title>\(escape(bar.0)): \(value(bar.1))</title></rect>"
        if bar.1 > 0 {
          svg += "<text x=\"\(f1(x + barWidth / 2))\" y=\"\(f1(Double(height) - h - 2))\" font-size=\"10\" "
          svg += "text-anchor=\"middle\">\(value(bar.1))</text>"
        }
        svg += "<text x=\"\(f1(x + barWidth / 2))\" y=\"\(height + 12)\" font-size=\"10\" "
        svg += "text-anchor=\"middle\">\(escape(bar.0))</text>"
      }
      return svg + "</svg>"
    }
    let rowHeight = 18
    let labelWidth = 110
    let width = 320
    var svg =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(rowHeight * bars.count + 4)\">"
    for (i, bar) in bars.enumerated() {
      let y = i * rowHeight
      let w = Double(width - labelWidth - 50) * bar.1 / largest
      let label = bar.0.count > 16 ? String(bar.0.prefix(15)) + "\u{2026}" : bar.0
      svg +=
        "<text x=\"\(labelWidth - 4)\" y=\"\(y + 13)\" font-size=\"11\" text-anchor=\"end\">\(escape(label))</text>"
      svg += "<rect x=\"\(labelWidth)\" y=\"\(y + 3)\" width=\"\(f1(w))\" height=\"\(rowHeight - 5)\" "
      svg +=
        "fill=\"\(OverlayRenderer.cssColor(for: bar.0))\"><title>\(escape(bar.0)): \(value(bar.1))</title></rect>"
      svg +=
        "<text x=\"\(f1(Double(labelWidth) + w + 4))\" y=\"\(y + 13)\" font-size=\"11\">\(value(bar.1))</text>"
    }
    return svg + "</svg>"
  }

  private static func f1(_ v: Double) -> String { String(format: "%.1f", v) }

  private static func format(_ v: Double?) -> String {
    guard let v else { return "-" }
    return String(format: "%.3f", v)
  }

  private static func low(_ v: Double?) -> String {
    guard let v, v < 0.7 else { return "" }
    return " class=\"low\""
  }

  /// Text and attribute values, escaped for HTML.
  static func escape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for c in s {
      switch c {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      default: out.append(c)
      }
    }
    return out
  }
}
