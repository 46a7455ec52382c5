// Package oneline folds text onto one line for logs, status fields and the
// console, where a line break would split one message into two.
package oneline

import "strings"

// Of collapses every run of white space in s (line breaks included) into one
// space and trims both ends.
func Of(s string) string { return strings.Join(strings.Fields(s), " ") }
