package databricks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/service/sql"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
)

// Media types of the files a table object yields.
const (
	mediaParquet = "application/vnd.apache.parquet"
	mediaCSV     = "text/csv"
)

// waitTimeout is how long the execute request waits for the statement
// before the connector polls for it.
const waitTimeout = "10s"

// maxTableName keeps <name>.parquet within file systems' 255-byte limit.
const maxTableName = 200

// tablePlan is what a table object asks for.
type tablePlan struct {
	name      string // the object's name
	file      string // the file it yields, <name>.parquet or <name>.csv
	csv       bool
	mediaType string
	statement string
}

// planTable checks a table object and works out its file and statement.
func (s *Source) planTable(obj model.Object) (tablePlan, error) {
	t := obj.Table
	if t == nil {
		return tablePlan{}, connectors.BadInput("connection %q: %s is not a table object", s.conn.Name, obj.Describe())
	}
	parts := strings.Split(t.Name, ".")
	ok := len(parts) <= 3 && len(t.Name) <= maxTableName
	for _, p := range parts {
		ok = ok && nameRE.MatchString(p)
	}
	if !ok {
		return tablePlan{}, connectors.BadInput("connection %q: table name %q: a table name is one to three parts (table, schema.table or catalog.schema.table) of letters, digits, '_' and '-' separated by dots, at most 200 characters, and also names the file the rows are written to; for another name give the object a simple name and put the SQL in query", s.conn.Name, t.Name)
	}
	plan := tablePlan{name: t.Name, file: t.Name + ".parquet", mediaType: mediaParquet}
	switch t.Format {
	case "", "parquet":
	case "csv":
		plan.csv, plan.file, plan.mediaType = true, t.Name+".csv", mediaCSV
	default:
		return tablePlan{}, connectors.BadInput("connection %q: table %q: unknown format %q (expected parquet or csv)", s.conn.Name, t.Name, t.Format)
	}
	if s.warehouse == "" {
		return tablePlan{}, connectors.BadInput("connection %q: table %q: no SQL warehouse to run it on: put the warehouse's HTTP path in the connection's url (https://<workspace-host>/sql/1.0/warehouses/<warehouse-id>) or set the worker's databricks.warehouseId", s.conn.Name, t.Name)
	}
	if q := strings.TrimSpace(t.Query); q != "" {
		plan.statement = q
		return plan, nil
	}
	switch {
	case len(parts) == 1 && s.catalog != "":
		parts = []string{s.catalog, s.schema, parts[0]}
	case len(parts) == 2 && s.catalog != "":
		parts = []string{s.catalog, parts[0], parts[1]}
	}
	for i, p := range parts {
		parts[i] = "`" + p + "`"
	}
	plan.statement = "SELECT * FROM " + strings.Join(parts, ".")
	return plan, nil
}

// Produce runs a table object's statement on the warehouse and writes its
// rows to <name>.parquet (or .csv) in dir.
func (s *Source) Produce(ctx context.Context, obj model.Object, dir string, progress func(string)) (connectors.Produced, error) {
	out, err := s.produce(ctx, obj, dir, progress)
	return out, s.clean(err)
}

func (s *Source) produce(ctx context.Context, obj model.Object, dir string, progress func(string)) (connectors.Produced, error) {
	plan, err := s.planTable(obj)
	if err != nil {
		return connectors.Produced{}, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return connectors.Produced{}, fmt.Errorf("connection %q: table %q: work folder %s is not a directory: %v", s.conn.Name, plan.name, dir, err)
	}
	resp, err := s.runStatement(ctx, plan, progress)
	if err != nil {
		return connectors.Produced{}, err
	}
	id := resp.StatementId
	m := resp.Manifest
	switch {
	case m == nil || m.Schema == nil || len(m.Schema.Columns) == 0:
		return connectors.Produced{}, fmt.Errorf("connection %q: table %q: statement %s succeeded but Databricks sent no result schema", s.conn.Name, plan.name, id)
	case m.Format != sql.FormatArrowStream:
		return connectors.Produced{}, fmt.Errorf("connection %q: table %q: statement %s: Databricks sent the result as %s, not the ARROW_STREAM the connector asked for", s.conn.Name, plan.name, id, m.Format)
	case m.Truncated:
		return connectors.Produced{}, connectors.BadInput("connection %q: table %q: Databricks truncated the result of statement %s (it hit a row or byte limit, at most 100 GiB through result links) and the connector does not bring in partial tables: narrow the table with a query, or split it into several objects", s.conn.Name, plan.name, id)
	}
	rows, err := s.writeResult(ctx, plan, resp, dir, progress)
	if err != nil {
		return connectors.Produced{}, err
	}
	table := connectors.Table{Name: plan.name, Rows: rows}
	for _, c := range m.Schema.Columns {
		table.Columns = append(table.Columns, connectors.Column{Name: c.Name, Type: c.TypeText})
	}
	return connectors.Produced{
		Files:      []connectors.ProducedFile{{Path: plan.file, EncodingFormat: plan.mediaType, Table: plan.name}},
		Tables:     []connectors.Table{table},
		Properties: map[string]string{"statement_id": id, "warehouse_id": s.warehouse},
	}, nil
}

// runStatement submits the plan's statement and polls it until it
// finishes. If it stops waiting before then (cancellation, an error), it
// cancels the statement so the warehouse does not run it for nobody.
func (s *Source) runStatement(ctx context.Context, plan tablePlan, progress func(string)) (*sql.StatementResponse, error) {
	req := sql.ExecuteStatementRequest{
		WarehouseId:   s.warehouse,
		Statement:     plan.statement,
		Catalog:       s.catalog,
		Schema:        s.schema,
		Disposition:   sql.DispositionExternalLinks,
		Format:        sql.FormatArrowStream,
		WaitTimeout:   waitTimeout,
		OnWaitTimeout: sql.ExecuteStatementRequestOnWaitTimeoutContinue,
	}
	var resp *sql.StatementResponse
	err := callAPI(ctx, func(ctx context.Context) (err error) {
		resp, err = s.stmts.ExecuteStatement(ctx, req)
		return err
	})
	if err != nil {
		return nil, s.apiFailure(fmt.Sprintf("table %q: submitting the statement to warehouse %s (from %s)", plan.name, s.warehouse, s.warehouseFrom), err)
	}
	id := resp.StatementId
	if id == "" {
		return nil, fmt.Errorf("connection %q: table %q: Databricks accepted the statement but sent no statement_id", s.conn.Name, plan.name)
	}
	finished := false
	defer func() {
		if !finished {
			s.cancelStatement(ctx, id)
		}
	}()
	started := time.Now()
	wait := s.opts.PollInterval
	for {
		if resp.Status == nil {
			return nil, fmt.Errorf("connection %q: table %q: statement %s: Databricks sent no status", s.conn.Name, plan.name, id)
		}
		switch state := resp.Status.State; state {
		case sql.StatementStateSucceeded:
			finished = true
			progress(fmt.Sprintf("table %s: statement %s succeeded after %s", plan.name, id, time.Since(started).Round(time.Second)))
			return resp, nil
		case sql.StatementStateFailed:
			finished = true
			return nil, s.statementFailed(plan, id, resp.Status.Error)
		case sql.StatementStateCanceled, sql.StatementStateClosed:
			finished = true
			return nil, fmt.Errorf("connection %q: table %q: statement %s is %s on warehouse %s although Airlock did not cancel it (the warehouse stopped, or someone cancelled it); the extraction will be retried", s.conn.Name, plan.name, id, state, s.warehouse)
		case sql.StatementStatePending, sql.StatementStateRunning:
			progress(fmt.Sprintf("table %s: statement %s %s for %s", plan.name, id, state, time.Since(started).Round(time.Second)))
		default:
			return nil, fmt.Errorf("connection %q: table %q: statement %s is in state %q, which the connector does not know", s.conn.Name, plan.name, id, state)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(wait*3/2, s.opts.MaxPollInterval)
		err := callAPI(ctx, func(ctx context.Context) (err error) {
			resp, err = s.stmts.GetStatement(ctx, sql.GetStatementRequest{StatementId: id})
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, s.apiFailure(fmt.Sprintf("table %q: polling statement %s", plan.name, id), err)
		}
	}
}

// cancelStatement asks the warehouse to stop statement id. It runs when the
// connector stops waiting, so it does not use ctx's cancellation.
func (s *Source) cancelStatement(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	_ = callAPI(ctx, func(ctx context.Context) error {
		return s.stmts.CancelExecution(ctx, sql.CancelExecutionRequest{StatementId: id})
	})
}

// sqlStateRE finds the SQLSTATE Databricks puts in error messages.
var sqlStateRE = regexp.MustCompile(`SQLSTATE: ([0-9A-Z]{5})`)

// statementFailed explains a statement that ended FAILED. Failures caused
// by the statement itself (bad SQL, a missing table or column, missing
// permissions: error code BAD_REQUEST or NOT_FOUND, or SQLSTATE class 42)
// are bad input; others (internal errors, timeouts, a warehouse that
// stopped) are retryable.
func (s *Source) statementFailed(plan tablePlan, id string, e *sql.ServiceError) error {
	code, msg := "UNKNOWN", "no error message"
	if e != nil {
		if e.ErrorCode != "" {
			code = string(e.ErrorCode)
		}
		if e.Message != "" {
			msg = e.Message
		}
	}
	bad := code == string(sql.ServiceErrorCodeBadRequest) || code == string(sql.ServiceErrorCodeNotFound)
	if m := sqlStateRE.FindStringSubmatch(msg); m != nil && strings.HasPrefix(m[1], "42") {
		bad = true
	}
	if bad {
		return connectors.BadInput("connection %q: table %q: Databricks refused the statement %s (%s): %s: check the table's name (or query) and that the signed-in identity may read it", s.conn.Name, plan.name, plan.statement, code, msg)
	}
	return fmt.Errorf("connection %q: table %q: statement %s failed on warehouse %s (%s): %s", s.conn.Name, plan.name, id, s.warehouse, code, msg)
}

// isContext reports whether err is a cancellation or deadline.
func isContext(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// outputPath is where the plan's file goes in dir, and the temporary file
// it is written to first.
func outputPath(dir string, plan tablePlan) (final, partial string) {
	final = filepath.Join(dir, plan.file)
	return final, final + ".partial"
}
