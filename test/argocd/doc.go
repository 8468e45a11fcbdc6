// Package argocd runs Rapport's Argo CD customizations (config/argocd: the
// health check and the resource actions of CXExperiment) the way Argo CD
// does, so tests can check them against experiments the real controller
// produced.
//
// Argo CD (util/lua in argoproj/argo-cd) runs a customization from argocd-cm
// in gopher-lua with the standard libraries skipped: only package, base,
// table and a "safe" os module (time and date, loaded with require("os"))
// are there, the object is the global table obj, and the script's return
// value is read back through JSON, where an empty table becomes an empty
// array. This package mirrors that contract, so a script that relies on the
// string library, or on anything else Argo CD does not offer, fails here as
// it would there. It owns no Rapport logic: the scripts do.
package argocd
