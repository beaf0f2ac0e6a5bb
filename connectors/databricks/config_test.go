package databricks_test

import (
	"context"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/databricks"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/version"
)

func TestURLConventions(t *testing.T) {
	ok := []struct {
		url, prefix, defaultWH, describe string
	}{
		{"https://adb-1.azuredatabricks.net/sql/1.0/warehouses/abc123", "", "", `https://adb-1.azuredatabricks.net (databricks connection "databricks", warehouse abc123)`},
		{"https://adb-1.azuredatabricks.net/sql/1.0/endpoints/abc123/", "", "wh-default", `https://adb-1.azuredatabricks.net (databricks connection "databricks", warehouse abc123)`},
		{"https://adb-1.azuredatabricks.net/?o=1234", "", "wh-default", `https://adb-1.azuredatabricks.net (databricks connection "databricks", warehouse wh-default)`},
		{"https://adb-1.azuredatabricks.net", "", "", `https://adb-1.azuredatabricks.net (databricks connection "databricks", no warehouse)`},
		{"https://dbc.example.com:8443/path/to/datasource.location", "", "", `https://dbc.example.com:8443 (databricks connection "databricks", no warehouse, tables in datasource.location)`},
		{"https://dbc.example.com/main.default/", "", "wh", `https://dbc.example.com (databricks connection "databricks", warehouse wh, tables in main.default)`},
		{"https://dbc.example.com/Volumes/main/raw/landing/in", "", "", `https://dbc.example.com (databricks connection "databricks", no warehouse, tables in main.raw, files in /Volumes/main/raw/landing/in)`},
		{"https://dbc.example.com/sql/1.0/warehouses/w1", "/Volumes/cat/sch/vol/", "", `https://dbc.example.com (databricks connection "databricks", warehouse w1, tables in cat.sch, files in /Volumes/cat/sch/vol)`},
		{"https://dbc.example.com/main.default", "/Volumes/cat/sch/vol", "", `https://dbc.example.com (databricks connection "databricks", no warehouse, tables in main.default, files in /Volumes/cat/sch/vol)`},
		{"http://127.0.0.1:8080", "", "", `http://127.0.0.1:8080 (databricks connection "databricks", no warehouse)`},
		{"http://localhost:8080", "", "", `http://localhost:8080 (databricks connection "databricks", no warehouse)`},
	}
	for _, c := range ok {
		conn := connection(c.url, patCreds)
		conn.Prefix = c.prefix
		opts := fastOptions()
		opts.DefaultWarehouseID = c.defaultWH
		src, err := databricks.New(context.Background(), provider(t, defaultSecrets), opts, conn)
		if err != nil {
			t.Errorf("url %s prefix %q: %v", c.url, c.prefix, err)
			continue
		}
		if d := src.Describe(); d != c.describe {
			t.Errorf("url %s prefix %q: Describe = %s\nwant %s", c.url, c.prefix, d, c.describe)
		}
	}

	bad := []struct {
		conn model.Connection
		want string
	}{
		{model.Connection{URL: "http://dbc.example.com"}, "must be reached over https"},
		{model.Connection{URL: "ftp://dbc.example.com"}, "must be reached over https"},
		{model.Connection{URL: "dbc.example.com/sql/1.0/warehouses/x"}, "no workspace host"},
		{model.Connection{URL: "https://me:pw@dbc.example.com"}, "must not carry credentials"},
		{model.Connection{URL: "https://dbc.example.com/path/to/location"}, `end in <catalog>.<schema>`},
		{model.Connection{URL: "https://dbc.example.com/a.b.c"}, `found last segment "a.b.c"`},
		{model.Connection{URL: "https://dbc.example.com/Volumes/main/raw"}, "/Volumes/<catalog>/<schema>/<volume>"},
		{model.Connection{URL: "https://dbc.example.com/Volumes/main/raw/v", Prefix: "/Volumes/a/b/c"}, "give it once"},
		{model.Connection{URL: "https://dbc.example.com", Prefix: "/tmp/landing"}, "prefix"},
		{model.Connection{URL: "https://dbc.example.com", Prefix: "/Volumes/a/b/c/../../x"}, "escapes its root"},
		{model.Connection{URL: "https://dbc.example.com#frag"}, "fragment"},
		{model.Connection{URL: "https://dbc.example.com", Endpoint: "https://x"}, "endpoint does not apply"},
		{model.Connection{URL: "https://dbc.example.com", Region: "eu-west-2"}, "region does not apply"},
		{model.Connection{}, "url is missing"},
		{model.Connection{URL: "https://dbc.example.com", Type: model.ConnS3}, `the databricks connector reads only databricks connections`},
	}
	for _, c := range bad {
		conn := c.conn
		if conn.Type == "" {
			conn.Type = model.ConnDatabricks
		}
		conn.Name, conn.Credentials = "databricks", patCreds
		_, err := databricks.New(context.Background(), provider(t, defaultSecrets), fastOptions(), conn)
		if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v; want bad input saying %q", c.conn, err, c.want)
		}
	}
}

func TestInstrument(t *testing.T) {
	src := newSource(t, connection("https://dbc.example.com", patCreds), fastOptions())
	if got := src.Instrument(); got != (connectors.Instrument{Name: "airlock databricks connector", Version: version.Version}) {
		t.Errorf("Instrument = %+v", got)
	}
	if src.Produces(fileObject("a.csv")) || src.Produces(prefixObject("")) {
		t.Error("Produces is true for a file or prefix")
	}
}
