// Recording hooks of the op's CPU kernels (internal; see cakes/ops/profile.h).
#pragma once

#include "cakes/ops/profile.h"

namespace cakes::ops::recorder {

// True while a recording is active (cheap: one relaxed atomic load).
bool recording();
// Appends a call to the active recording (dropped if none is active).
void record(ConvCall call);

} // namespace cakes::ops::recorder
