# demo-lib.sh — shell helpers for hack/demo-bgp.sh (sourced); hack/demo.sh builds its lab with hack/lab.

# demo_veth TMP NS_A IF_A NS_B IF_B: a veth pair between two network namespaces,
# named IF_A in NS_A and IF_B in NS_B, both up. TMP (≤ 13 characters, unique on
# the host) names the ends while they pass through the root namespace.
demo_veth() {
  local tmp=$1 nsa=$2 ifa=$3 nsb=$4 ifb=$5
  ip link add "${tmp}a" type veth peer name "${tmp}b"
  ip link set "${tmp}a" netns "$nsa"
  ip link set "${tmp}b" netns "$nsb"
  ip -n "$nsa" link set "${tmp}a" name "$ifa"
  ip -n "$nsb" link set "${tmp}b" name "$ifb"
  ip -n "$nsa" link set "$ifa" up
  ip -n "$nsb" link set "$ifb" up
}
