// Command hasp is the operator's and developer's command-line client for a
// hasp cell.
//
//	hasp ls PATH                    list a directory (-l for details)
//	hasp stat PATH                  show a node's metadata
//	hasp cat PATH                   write a file's contents to stdout
//	hasp mkdir PATH                 create a directory
//	hasp rm PATH                    delete a file or an empty directory
//	hasp put PATH [DATA|-]          create or replace a file (stdin if no DATA)
//	     [--if-generation N] [--ephemeral] [--sequential]
//	hasp txn                        apply JSON-lines ops from stdin, all or none
//	hasp status                     ask every replica about itself
//	hasp bench write|read           load generator (see docs/benchmarks.md)
//	hasp bench failover             kill -9 the master of a cell it starts; time the fail-over
//
// Global flags: --cell ADDR,ADDR,... (env HASP_CELL; default the haspd --dev
// cell on 127.0.0.1:7001-7005), --json (one JSON object per result per
// line), --timeout D (default 10s, per command; per operation in bench).
//
// Names are full: /ls/CELL/a/b, or /ls/local/a/b for the connected cell.
// Exit status: 0 success, 1 the operation failed (one line on stderr),
// 2 usage error.
package main
