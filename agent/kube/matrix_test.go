package kube

import (
	"errors"
	"testing"
)

func TestEmbeddedMatrix(t *testing.T) {
	m := DefaultSupportMatrix()
	rel, err := m.Release(DefaultTFTag)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Supports(KubernetesVersion) == Unsupported {
		t.Fatalf("the pinned Kubernetes %s is not accepted for the default TF release %s", KubernetesVersion, DefaultTFTag)
	}
	if r, _ := m.Release("R21.12"); r.Supports("v1.21.4") != Published || r.Supports("Kubernetes v1.12.0") != Unsupported {
		t.Fatal("R21.12 row wrong")
	}
	if _, err := m.Release("nope"); !errors.Is(err, ErrUnknownRelease) {
		t.Fatal(err)
	}
	if _, err := ParseSupportMatrix([]byte("releases:\n- name: x\n  published: ['1.2']\n")); err == nil {
		t.Fatal("matrix without sources accepted")
	}
}

func TestParseMinor(t *testing.T) {
	for in, want := range map[string][2]int{"v1.37.2": {1, 37}, "1.21": {1, 21}, "Kubernetes v1.12.10": {1, 12}, "6.18.44-fc-v669": {6, 18}} {
		maj, min, ok := parseMinor(in)
		if !ok || maj != want[0] || min != want[1] {
			t.Errorf("%q: %d.%d %v", in, maj, min, ok)
		}
	}
	for _, bad := range []string{"", "v1", "x.1", "1.x", "-1.2"} {
		if _, _, ok := parseMinor(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseSupportMatrix(f *testing.F) {
	f.Add(supportMatrixYAML)
	f.Add([]byte("releases: [{name: a, published: ['x.y']}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseSupportMatrix(data)
		if err != nil {
			return
		}
		for _, r := range m.Releases {
			_ = r.Supports("v1.37.2")
		}
	})
}
