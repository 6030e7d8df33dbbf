#include "cakes/search/budget.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

namespace cakes::search {

double CostModel::total(const std::vector<std::vector<int64_t>>& counts) const {
  double t = fixed;
  for (size_t l = 0; l < counts.size(); ++l)
    for (size_t n = 0; n < counts[l].size(); ++n)
      t += double(counts[l][n]) * cost[l][n];
  return t;
}

double CostModel::minimum(const std::vector<int64_t>& widths) const {
  double t = fixed;
  for (size_t l = 0; l < widths.size(); ++l)
    t += double(widths[l]) * *std::min_element(cost[l].begin(), cost[l].end());
  return t;
}

CostModel mac_cost_model(const SuperNet& net, std::vector<int64_t> input) {
  const auto report = net.model.cost(input);
  std::map<std::string, const LayerCost*> rows;
  for (const auto& r : report.layers)
    rows[r.name] = &r;
  auto row = [&](const std::string& name) -> const LayerCost& {
    const auto it = rows.find(name);
    if (it == rows.end())
      throw std::logic_error("cost model: no cost row for '" + name + "'");
    return *it->second;
  };
  int64_t full = 1;
  for (const auto& k : net.candidates)
    full = std::max({full, k.d, k.h, k.w});
  const double full_vol = double(full * full * full);

  CostModel m;
  m.unit = "MACs";
  double searched = 0, reference = 0;
  std::set<std::string> names;
  for (const auto& l : net.layers) {
    names.insert(l.name);
    const auto& r = row(l.name);
    const auto& o = r.output_shape;
    // Per output channel and tap of kernel volume, at the derived layer's
    // input width (a layer that reads a searched one reads N * C_in channels
    // in the super-network, C_in once derived).
    const double unit = double(o[0] * o[2] * o[3] * o[4]) *
                        double(net.positions[l.position].in_channels);
    std::vector<double> c;
    for (const auto& k : net.candidates)
      c.push_back(unit * double(k.volume()));
    m.cost.push_back(c);
    searched += double(r.macs);
    reference += unit * full_vol * double(l.width);
  }
  // Readers that are not searched themselves (the bottleneck's last 1x1x1)
  // are linear in their input channels: N * C_out -> C_out.
  double readers_saved = 0;
  for (const auto& l : net.layers)
    if (!l.summed && !names.count(net.positions[l.position].reader))
      readers_saved += double(row(net.positions[l.position].reader).macs) *
                       (1 - 1.0 / double(net.candidates.size()));
  m.fixed = double(report.total_macs()) - searched - readers_saved;
  m.reference = m.fixed + reference;
  return m;
}

CostModel volume_cost_model(const SuperNet& net) {
  CostModel cm;
  cm.unit = "kernel volume";
  for (size_t l = 0; l < net.layers.size(); ++l) {
    std::vector<double> c;
    for (const auto& k : net.candidates)
      c.push_back(double(k.volume()));
    cm.cost.push_back(c);
  }
  return cm;
}

} // namespace cakes::search
