# Sourced by scripts/build.sh, sanitize.sh and fuzz.sh (from the clone's root): ccache
# (Debian ccache; MGREG_CCACHE=0 turns it off) in one cache outside the clone, shared by
# every clone under the same parent folder and by every build tree (normal, ASan, TSan,
# fuzz), so a fresh clone of the same sources compiles from cache. Sets
# mgreg_ccache_args to the cmake arguments that use it (empty without ccache).
mgreg_ccache_args=()
if [ "${MGREG_CCACHE:-1}" != 0 ] && command -v ccache >/dev/null 2>&1; then
  export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mgreg-ccache}"
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd .. && pwd)}"
  export CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-20G}"
  mgreg_ccache_args=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
