# Sourced by the check scripts (.ci/run, packaging/windows/check.sh, tests/aarch64/run.sh):
# timing their steps and installing the Debian packages a fresh machine lacks.

# start_steps PREFIX: from here on, `step NAME` prints "PREFIX: NAME (N s)", N the seconds since
# the previous step (or since start_steps).
start_steps() {
    step_prefix=$1
    step_started=$SECONDS
}

# step NAME: prints how long the step that just ended took.
step() {
    echo "$step_prefix: $1 ($((SECONDS - step_started)) s)"
    step_started=$SECONDS
}

# apt_install [APT-GET OPTION...] PACKAGE...: installs the packages with apt-get, through sudo
# where not root, after refreshing the package lists; prints nothing but errors.
apt_install() {
    local sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "$@" >/dev/null
}
