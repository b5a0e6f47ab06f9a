// The plans by --target.
import { hostsPlan } from './hosts.js';
import { kubernetesPlan } from './kubernetes.js';
import type { DeployPlan } from './plan.js';
import { singleHostPlan } from './single-host.js';

export const deployPlans = {
  systemd: singleHostPlan,
  kubernetes: kubernetesPlan,
  hosts: hostsPlan,
} as const satisfies Record<string, DeployPlan>;
