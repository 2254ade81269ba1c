package bridge

import "testing"

// TestCatalogResolvesStatics: what the request path reads is resolved when the catalog is
// built, so a new catalog needs nothing cleared when it is installed.
func TestCatalogResolvesStatics(t *testing.T) {
	cat, err := buildCatalogWith(pollsSources(), catalogConfig{access: accessConfig{policy: Policy{Default: IsAuthenticated}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, res := range cat.streams {
		if res.access == nil || res.modelJSON == nil {
			t.Fatalf("%s: permissions or model not resolved", name)
		}
		if got := permissionText(res.access.of("retrieve")); got != "is_authenticated" {
			t.Fatalf("%s: retrieve permission %q, want the configured default", name, got)
		}
		if sm := res.subscribe; sm != nil {
			want := sm.pk
			if want == nil {
				want = sm.evPK
			}
			if sm.key != want {
				t.Fatalf("%s: subscription key field %v, want %v", name, sm.key, want)
			}
		}
	}
	for k := kindCreate; k <= kindDelete; k++ {
		n := kindNames[k]
		if got, ok := standardKind(string(n[0]-'a'+'A') + n[1:]); !ok || got != k {
			t.Fatalf("standardKind of %s: %v %v", n, got, ok)
		}
	}
	if _, ok := standardKind("Custom"); ok {
		t.Fatal("Custom is not a standard method name")
	}
}
