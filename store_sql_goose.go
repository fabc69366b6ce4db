package tasks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/taskwheel/tasks/internal/sqlstore"
)

// Migrations for other tools.
//
// Applications that apply their schema changes with a tool of their own
// (goose, Atlas, ...) rather than Migrate take this package's migrations
// from sqlite.Migrations or postgres.Migrations: an fs.FS of each dialect's
// migrations in goose's format, built here from the embedded files. Each
// file keeps its name (<version>_<name>.sql, the version goose reads), and
// holds:
//
//	-- +goose Up
//	-- +goose StatementBegin
//	<the migration, as Migrate runs it>
//	-- +goose StatementEnd
//	<the statements that record it in taskwheel_migrations, as Migrate does>
//
// The migration is one statement for goose, run as Migrate runs it (a
// PL/pgSQL body's semicolons are not where goose would split it), and
// recording it in taskwheel_migrations keeps SchemaVersion, Migrate and
// Engine.Start agreeing with the tool: Migrate finds nothing left to apply,
// and a database migrated past this package's version is refused. Goose
// runs each file in a transaction, as it does by default. There is no Down
// migration: the library has none.

func init() {
	sqlstore.Migrations = func(dialect string) fs.FS {
		d := SQLite
		if dialect == "postgres" {
			d = Postgres
		}
		return d.gooseMigrations()
	}
}

// gooseMigrations returns d's migrations in goose's format, as described
// above. It panics if the embedded files are malformed, which this
// package's tests rule out.
func (d Dialect) gooseMigrations() fs.FS {
	ms, err := d.migrations()
	if err != nil {
		panic("tasks: " + err.Error())
	}
	files := make(map[string][]byte, len(ms))
	for _, m := range ms {
		var b bytes.Buffer
		b.WriteString("-- +goose Up\n-- +goose StatementBegin\n")
		b.WriteString(strings.TrimRight(m.sql, " \t\r\n"))
		b.WriteString("\n-- +goose StatementEnd\n")
		b.WriteString(createMigrationsTable + ";\n")
		// Literals, not parameters: the file is SQL text. The name is a
		// file name of this package's, quoted as SQL quotes.
		fmt.Fprintf(&b, "INSERT INTO taskwheel_migrations (version, name) VALUES (%d, '%s');\n",
			m.version, strings.ReplaceAll(m.name, "'", "''"))
		files[m.name] = b.Bytes()
	}
	return memFS(files)
}

// memFS is a read-only fs.FS of files in one directory, "."; the map is
// never changed.
type memFS map[string][]byte

func (m memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &memDir{fs: m}, nil
	}
	b, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{info: memInfo{name: name, size: int64(len(b))}, Reader: bytes.NewReader(b)}, nil
}

// ReadFile implements fs.ReadFileFS.
func (m memFS) ReadFile(name string) ([]byte, error) {
	b, ok := m[name]
	if !ok || !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(b), nil
}

// ReadDir implements fs.ReadDirFS.
func (m memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return m.entries(), nil
}

// entries returns the files' entries in name order.
func (m memFS) entries() []fs.DirEntry {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	es := make([]fs.DirEntry, len(names))
	for i, n := range names {
		es[i] = fs.FileInfoToDirEntry(memInfo{name: n, size: int64(len(m[n]))})
	}
	return es
}

// memFile is an open file of a memFS.
type memFile struct {
	info memInfo
	*bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Close() error               { return nil }

// memDir is the open directory "." of a memFS.
type memDir struct {
	fs   memFS
	read int // entries returned by ReadDir so far
}

func (d *memDir) Stat() (fs.FileInfo, error) { return memInfo{name: ".", dir: true}, nil }
func (d *memDir) Close() error               { return nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	es := d.fs.entries()[d.read:]
	if n > 0 {
		if len(es) == 0 {
			return nil, io.EOF
		}
		es = es[:min(n, len(es))]
	}
	d.read += len(es)
	return es, nil
}

// memInfo describes a file or the directory of a memFS.
type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
