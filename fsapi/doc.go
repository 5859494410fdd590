// Package fsapi is hasp's vocabulary: node names, node metadata, open
// options and every error a caller can test for with errors.Is or errors.As.
//
// It owns no goroutines, no IO and no clock, and imports only the standard
// library, so that the server (master/...), the client (cellclient) and the
// pure cores (locks, lease, cache) can all share it.
//
// # Names
//
// A name is /ls/CELL/a/b/c. CELL is the cell's name; "local" means the cell
// the client is connected to. Each component is 1–255 bytes of
// [A-Za-z0-9._-], not "." or "..", and a whole name is at most 1024 bytes.
// ParseName checks a name and returns the cell and the path inside the cell:
//
//	cell, p, err := fsapi.ParseName("/ls/dev/service/leader")
//	// cell == "dev", p == "/service/leader"
//
// # Errors
//
// Callers test errors with errors.Is(err, fsapi.ErrNotExist) and friends, or
// errors.As(err, &notMaster) for the typed ones. Messages are prefixed
// "fsapi: " and never compared as strings.
package fsapi
