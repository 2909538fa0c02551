// What the kernel offers for self-confinement. Hearth does not confine itself yet; this
// only reports (for `hearth doctor`) what a sandbox could use.
#pragma once

namespace hearth::platform {

// The Landlock ABI version the running kernel supports, or 0 when Landlock is absent or
// disabled. ABI 4+ also restricts TCP bind/connect.
int landlock_abi();

}  // namespace hearth::platform
