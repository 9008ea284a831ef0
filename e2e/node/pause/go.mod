// The pod sandbox's pause program for the real node (e2e/node/image.ts builds its image).
module accel-lease/e2e/node/pause

go 1.26.0
