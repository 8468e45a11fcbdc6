// Package replicas splits traffic by the number of pods of each variant, for
// clusters without a gateway: the Service clients use selects the pods of
// every variant, so each variant's share of requests follows its share of
// pods.
//
// Rounding (Split): each variant with a weight above zero gets at least one
// pod; the rest of spec.traffic.replicas.total is shared by the largest
// remainder method (ties go to the earlier variant, the control first: the
// cautious side), so the counts always add up to the total. With 10 pods
// and a 5% step the variant still gets 1 pod (10%): small steps are coarse
// with few pods, which status reports as the applied weight.
//
// Original replica counts are recorded in status before the first change
// and restored when the experiment is deleted (unless it was promoted).
package replicas
