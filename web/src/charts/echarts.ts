// ECharts from its core with only the chart types the console draws (the Sankey is the paths
// insight's), so the bundle carries nothing else (tree-shaken). Imported by pages, never by
// the shell: charts load with their page.
import * as echarts from 'echarts/core'
import { BarChart, LineChart, SankeyChart } from 'echarts/charts'
import { DataZoomComponent, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent } from 'echarts/components'
import { CanvasRenderer } from 'echarts/renderers'

echarts.use([LineChart, BarChart, SankeyChart, GridComponent, TooltipComponent, LegendComponent, MarkLineComponent, DataZoomComponent, CanvasRenderer])

export default echarts
export type { EChartsCoreOption } from 'echarts/core'
