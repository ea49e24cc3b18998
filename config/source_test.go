package config

import (
	"reflect"
	"testing"
)

func TestIndexSource(t *testing.T) {
	src := "\xef\xbb\xbf# comment [[pool]]\n" + // 1
		"top = 1 # url = 2\n" + // 2
		"[server]\n" + // 3
		"  listen = \"a:1\" # [x]\n" + // 4
		"[[pool]]\n" + // 5
		"name = \"a\"\n" + // 6
		"password = \"\"\"\n" + // 7
		"[[pool]]\n" + // 8
		"url = \\\"\"\"\n" + // 9
		"\"\"\"\n" + // 10
		"list = [\n" + // 11
		"  { url = 1 },\n" + // 12
		"  \"]\", 'x]',\n" + // 13
		"]\n" + // 14
		"lit = '''\n" + // 15
		"user = x'''\n" + // 16
		"[[ pool ]]\n" + // 17
		"\"url\" = 'b'\n" + // 18
		"[pool.tls]\n" + // 19
		"skip = true\n" + // 20
		"[[pool.alt]]\n" + // 21
		"a = 1\n" + // 22
		"[[pool.alt]]\n" + // 23
		"a.b . 'c' = 2\n" + // 24
		"[[pool]]\n" + // 25
		"[[pool.alt]]\n" + // 26
		"[\"quoted.table\"]\r\n" + // 27
		"k = 1\r\n" + // 28
		"pools = [ # \"x\", 1\n" + // 29
		"  'a,b', [1, [2]], # ,\n" + // 30
		"  \"c\" ,]\n" // 31
	want := map[string]int{
		"top":                   2,
		"server":                3,
		"server.listen":         4,
		"pool[0]":               5,
		"pool[0].name":          6,
		"pool[0].password":      7,
		"pool[0].list":          11,
		"pool[0].lit":           15,
		"pool[1]":               17,
		"pool[1].url":           18,
		"pool[1].tls":           19,
		"pool[1].tls.skip":      20,
		"pool[1].alt[0]":        21,
		"pool[1].alt[0].a":      22,
		"pool[1].alt[1]":        23,
		"pool[1].alt[1].a.b.c":  24,
		"pool[2]":               25,
		"pool[2].alt[0]":        26,
		"quoted.table":          27,
		"quoted.table.k":        28,
		"pool[0].list[0]":       12,
		"pool[0].list[1]":       13,
		"pool[0].list[2]":       13,
		"quoted.table.pools":    29,
		"quoted.table.pools[0]": 30,
		"quoted.table.pools[1]": 30,
		"quoted.table.pools[2]": 31,
	}
	got := indexSource("t.toml", []byte(src))
	if !reflect.DeepEqual(got.lines, want) {
		t.Errorf("indexSource lines:\n got %v\nwant %v", got.lines, want)
	}

	for key, line := range map[string]int{
		"pool[1].url":      18,
		"pool[1].user":     17, // not in the file: its table's line
		"pool[0].tls.skip": 5,
		"pool[0].list[1]":  13,
		"pool[0].list[7]":  11, // no such element: the array's line
		"server.bogus":     3,
		"log.level":        0,
	} {
		if l := got.line(key); l != line {
			t.Errorf("line(%q) = %d, want %d", key, l, line)
		}
	}
	var none *source
	if none.line("server.listen") != 0 || none.file() != "" {
		t.Error("a nil source knows nothing")
	}
}
