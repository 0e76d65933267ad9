package naming

import (
	"errors"
	"strings"
	"testing"
)

func TestStreamURL(t *testing.T) {
	const base = "http://h/v1/stream/"
	hookTo := func(u string) func(string) (string, error) {
		return func(string) (string, error) { return u, nil }
	}
	failing := func(string) (string, error) { return "", errors.New("no tenant") }
	for _, tc := range []struct {
		name, topic string
		hook        func(string) (string, error)
		want        string // the URL, or a part of the reason
		refused     bool
	}{
		{"plain topic", "orders", nil, "http://h/v1/stream/orders", false},
		{"escaped", "a b", nil, "http://h/v1/stream/a%20b", false},
		{"empty", "", nil, "empty", true},
		{"dot", ".", nil, "dot segment", true},
		{"dot dot", "..", nil, "dot segment", true},
		{"slash", "a/b", nil, "slash", true},
		{"backslash", `a\b`, nil, "slash", true},
		{"control character", "a\x01", nil, "control character", true},
		{"DEL", "a\x7f", nil, "control character", true},
		{"control routes", "__ds", nil, `"__ds"`, true},
		{"not the control routes", "__ds2", nil, "http://h/v1/stream/__ds2", false},
		{"hook", "t/a", hookTo("http://h/x/t/a"), "http://h/x/t/a", false},
		{"hook fails", "t", failing, "hook failed", true},
		{"hook returns nothing", "t", hookTo(""), "empty URL", true},
		{"hook topic with a dot segment", "t/../x", hookTo("http://h/x"), "dot segment", true},
		{"hook URL not http", "t", hookTo("ftp://h/x"), "not an http", true},
		{"hook URL without host", "t", hookTo("http:///x"), "no host", true},
		{"hook URL with query", "t", hookTo("http://h/x?a=1"), "query or fragment", true},
		{"hook URL with empty query", "t", hookTo("http://h/x?"), "query or fragment", true},
		{"hook URL with fragment", "t", hookTo("http://h/x#f"), "query or fragment", true},
		{"hook URL with a dot segment", "t", hookTo("http://h/a/../x"), "dot segment", true},
		{"hook URL into groups", "t", hookTo("http://h/__groups/x"), `"__groups"`, true},
		{"hook URL into offsets", "t", hookTo("http://h/__offsets/x"), `"__offsets"`, true},
		{"hook URL into control routes", "t", hookTo("http://h/x/__ds/y"), `"__ds"`, true},
		{"hook URL not a URL", "t", hookTo("http://h/%zz"), "not a URL", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, reason, _ := StreamURL(base, tc.hook, tc.topic)
			if tc.refused {
				if u != "" || !strings.Contains(reason, tc.want) {
					t.Fatalf("got %q, reason %q; want a refusal naming %q", u, reason, tc.want)
				}
				return
			}
			if reason != "" || u != tc.want {
				t.Fatalf("got %q, reason %q; want %q", u, reason, tc.want)
			}
		})
	}
	if _, _, err := StreamURL(base, failing, "t"); err == nil {
		t.Fatal("a failing hook's error is not given back")
	}
}

func TestReserved(t *testing.T) {
	for topic, reserved := range map[string]bool{
		"orders": false, "__groups": true, "__groups/x": true, "__groupsx": false,
		"__offsets/g": true, "a/__ds/b": true, "__ds2": false, "t.partitions": true,
		"t.p0": true, "t.p12": true, "t.p": false, "t.px": false, "t.eo-writer": true,
		"t.eo-writers": false, "v1.2": false,
	} {
		if got := Reserved(topic) != ""; got != reserved {
			t.Errorf("Reserved(%q) = %v, want %v", topic, got, reserved)
		}
	}
}

func TestSegmentProblem(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"g", ""}, {"__ds2", ""}, {"x__ds", ""}, {"__DS", ""}, {"__groups", ""}, {"__offsets", ""},
		{".", "dot segment"}, {"..", "dot segment"}, {"a/b", "slash"}, {`a\b`, "slash"},
		{"a\n", "control character"},
		{"__ds", `"__ds" is reserved by the protocol for its control routes`},
	} {
		got := SegmentProblem(tc.name)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("SegmentProblem(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
