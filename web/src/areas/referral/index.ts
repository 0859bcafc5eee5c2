// The referral (fission) area: K-factor, referral share and conversion with and without
// flagged invitations, the invite forest's depths, the inviters with their rewards and fraud
// flags, and one person's invite tree (docs/queries.md "Referral", "Invite tree").
import { defineArea } from '../area'

export default defineArea({
  routes: [{ path: 'referral', name: 'referral', component: () => import('./ReferralPage.vue') }],
  nav: [{ name: 'referral', path: '/referral', icon: '⑂', order: 65 }],
})
